"""Record keys: the site key that tags every record line (HMAC-SHA256), where it lives, its id.

The writer's key is, in order: ``--key FILE``, the file named by ``STIMCTL_RECORD_KEY`` (a key
that several stations share), else the site key ``<config>/stimctl/record.key``, created on
first use with mode 0600 (``<config>`` is ``$XDG_CONFIG_HOME``, else ``~/.config``). A key file
holds 64 hex digits (32 random bytes). A key is never kept inside the records folder (whoever
can rewrite the records could then re-tag them) and never written into a record: the record's
opening line names it by its id, the first 16 hex digits of sha256("stimctl record key id:" +
key). Rescue files go to ``<state>/stimctl/rescue`` (``$XDG_STATE_HOME``, else
``~/.local/state``) when they cannot go beside their record.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from stimctl.host.errors import RecordFailed

__all__ = [
    "KEY_ENV",
    "RecordKey",
    "RecordKeyError",
    "key_id",
    "read_key",
    "rescue_dir",
    "site_key_path",
    "verifying_keys",
    "writing_key",
]

KEY_ENV = "STIMCTL_RECORD_KEY"
_KEY_BYTES = 32
_ID_PREFIX = b"stimctl record key id:"


class RecordKeyError(RecordFailed):
    """A record key that cannot be read, created or used (one line: which file and why)."""


def _home_dir(env: str, fallback: str) -> Path:
    value = os.environ.get(env, "")
    return Path(value) if os.path.isabs(value) else Path.home() / fallback


def site_key_path() -> Path:
    """Where this user's site key lives: ``$XDG_CONFIG_HOME/stimctl/record.key``."""
    return _home_dir("XDG_CONFIG_HOME", ".config") / "stimctl" / "record.key"


def rescue_dir() -> Path:
    """The user's state folder for rescue files: ``$XDG_STATE_HOME/stimctl/rescue``."""
    return _home_dir("XDG_STATE_HOME", ".local/state") / "stimctl" / "rescue"


def key_id(secret: bytes) -> str:
    """The key's public name: 16 hex digits that say which key, not what it is."""
    return hashlib.sha256(_ID_PREFIX + secret).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RecordKey:
    """A record key: its secret bytes (never printed) and the file it came from."""

    secret: bytes = field(repr=False)
    path: Path

    @property
    def id(self) -> str:
        return key_id(self.secret)


def read_key(path: Path) -> RecordKey:
    """The key in ``path``; RecordKeyError when it is missing, unreadable or not a key."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordKeyError(f"record key {path}: {_why(exc)}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != _KEY_BYTES:
        raise RecordKeyError(f"record key {path}: not a key ({_KEY_BYTES * 2} hex digits expected)")
    return RecordKey(secret, path)


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _create_site_key(path: Path) -> None:
    """A new random key, mode 0600, in a folder only this user can enter (never replaced)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first: use theirs
    except OSError as exc:
        raise RecordKeyError(f"cannot create the site record key {path}: {_why(exc)}") from None
    try:
        os.write(fd, (secrets.token_hex(_KEY_BYTES) + "\n").encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise RecordKeyError(f"cannot write the site record key {path}: {_why(exc)}") from None
    os.close(fd)


def _inside(key: Path, records_folder: Path) -> bool:
    """Whether ``key`` lies in ``records_folder`` or below it. A folder that holds the home
    directory (records written straight into ~ or /tmp/...) is not taken as a records folder
    for keys below the home directory: it holds the config folder too."""
    folder, home = records_folder.resolve(), Path.home().resolve()
    key = key.resolve()
    if key.parent == folder:
        return True
    return key.is_relative_to(folder) and not home.is_relative_to(folder)


def writing_key(explicit: Path | None, records_folder: Path) -> RecordKey:
    """The key a new record in ``records_folder`` is tagged with (the site key is created on
    first use); RecordKeyError if it cannot be had, lies inside that folder, or others may read
    it."""
    named = explicit or (Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else None)
    path = named or site_key_path()
    if _inside(path, records_folder):
        raise RecordKeyError(
            f"record key {path} is inside the records folder {records_folder}: keep it elsewhere"
            " (whoever can rewrite the records must not hold the key)"
        )
    if named is None and not path.exists():
        _create_site_key(path)
    key = read_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise RecordKeyError(
            f"record key {path} has mode {mode:04o}: others may read it; chmod 600 it"
        )
    return key


def verifying_keys(explicit: Path | None) -> list[RecordKey]:
    """Every key this user has for checking tags: ``explicit`` (an error if unreadable), the
    one named by STIMCTL_RECORD_KEY, and the site key if it exists. Never creates one."""
    keys = [read_key(explicit)] if explicit is not None else []
    env = os.environ.get(KEY_ENV)
    if env:
        keys.append(read_key(Path(env)))
    if site_key_path().is_file():
        keys.append(read_key(site_key_path()))
    return keys
