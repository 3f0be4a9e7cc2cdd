"""plaintoml.loads accepts and refuses exactly what tomllib.loads does, with the same values.

Compared on every TOML file of the repository (the library, the bad-profile corpus with its
malformed, duplicate-key and binary cases), on malformed and tricky snippets, on generated
profiles and on random edits of profiles.
"""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.benchmarks.profilegen import generate
from stimctl.rules import plaintoml

ROOT = Path(__file__).parents[1]
TOML_FILES = sorted(
    p
    for folder in ("profiles", "tests/bad_profiles", "tests/bad_profiles/envelopes")
    for p in (ROOT / folder).glob("*.toml")
)

#: Documents tomllib refuses, most of them one step outside what plaintoml reads itself.
MALFORMED = [
    "a = 1\na = 2",
    'a = 1\na = "x"',
    "[t]\nx = 1\n[t]\ny = 2",
    "[t]\n[[t]]",
    "[[t]]\n[t]",
    "t = 1\n[t]",
    "t = [1]\n[[t]]",
    "[[t]]\nx = 1\nx = 2",
    'a = "unterminated',
    'a = "x" "y"',
    "a = 'it's'",
    "a = 01",
    "a = 1.",
    "a = .5",
    "a = 1e",
    "a = 1__0",
    "a = 1_",
    "a = +",
    "a = 1 2",
    "a = 0x",
    "a = [1,,2]",
    "a = [,]",
    "a = [1 2]",
    "a = [1",
    "a =",
    "= 1",
    "a",
    "a.b = 1\na = 2",
    "a = true1",
    "a = True",
    "a = nul",
    "a = infinity",
    'a = "\x01"',
    'a = "x\x7f"',
    "a = 1 # bad \x00 comment",
    "a = 1\r",
    "a = 1\rb = 2",
    'a = "\\q"',
    'a = "\\uD800"',
    'a = """x',
    'a = """x""""""',
    'a = """x\\ y\n"""',
    "a = '''x",
    "[]",
    "[[]]",
    "[ [t] ]",
    "[t",
    "[t]]",
    "a = {b = 1, b = 2}",
    "a = 1979-05-27T",
    "a = 12:3",
    "\ufeffa = 1",
    "a\u00a0= 1",
    "ä = 1",
    "a = 1\n\n[t]\nb = 2\n[t.c]\nd = 3\n[t]",
]

#: Documents tomllib accepts; some inside the plain subset, some just outside it.
VALID = [
    "",
    "\n\n",
    "# only a comment",
    "a = 1",
    "a=1",
    "  a\t=\t1  # comment\t",
    "a = -0\nb = +0\nc = +5\nd = -0.0\ne = 1e5\nf = 1E+05\ng = 6.02e-23\nh = 0e0",
    "a = 1e400\nb = -1e400\nc = 5e-400",
    "a = inf\nb = -inf\nc = +inf\nd = nan\ne = -nan\nf = +nan",
    "a = 123456789012345678901234567890",
    "a = 1_000\nb = 0x1F\nc = 0o17\nd = 0b101",
    "a = true\nb = false",
    'a = ""\nb = "x # not a comment"\nc = "tab\there"\nd = "ünï©ødé"',
    "a = ''\nb = 'C:\\path'\nc = 'no \"escape\"'",
    'a = "esc\\n\\t\\"\\\\\\u00e9\\U0001F600"',
    'a = """\nfirst\nsecond"""',
    'a = """\\\n   joined \\\n   up"""',
    'a = """x"y""z"""',
    'a = """x""""',
    'a = """\r\nCRLF\r\n"""',
    "a = '''\nraw\\n\n'''",
    "a = []\nb = [ ]\nc = [1,]\nd = [1, 2.5, -3e2]\ne = [ 1 , 2 ]",
    'a = ["x", 1]\nb = [\n  1,\n  2,\n]\nc = [[1], [2]]',
    "[t]\na = 1\n[u]\nb = 2",
    "[ t ]\na = 1\n[[ arr ]]\nb = 1\n[[arr]]\nb = 2",
    "[[arr]]\n[[arr]]\n[[arr]]",
    "a.b = 1\na.c = 2",
    '"quoted key" = 1',
    "'literal key' = 1",
    "[t.u]\na = 1",
    "[t]\n[t.u]\na = 1",
    "a = {b = 1}",
    "a = 1979-05-27\nb = 07:32:00\nc = 1979-05-27T07:32:00Z",
    "1 = 2\n-_ = 3\ninf = 4",
    "a = 1\r\nb = 2\r\n",
    "a = 1\n[[t]]\na = 1\n[[t]]\na = 2\n[u]\na = 3",
]


def _outcome(loads: object, text: str) -> tuple[str, ...]:
    """("ok", repr of the value) or ("error", exception type, message)."""
    try:
        return ("ok", repr(loads(text)))  # type: ignore[operator]
    except Exception as error:  # the error is the answer compared
        return ("error", type(error).__name__, str(error))


def _same(text: str) -> None:
    assert _outcome(plaintoml.loads, text) == _outcome(tomllib.loads, text), repr(text)


@pytest.mark.parametrize("path", TOML_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_repository_toml_file_reads_as_tomllib_reads_it(path: Path) -> None:
    _same(path.read_bytes().decode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_snippet_is_refused_with_tomllibs_error(text: str) -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)
    _same(text)


@pytest.mark.parametrize("text", VALID)
def test_valid_snippet_gives_tomllibs_value(text: str) -> None:
    tomllib.loads(text)
    _same(text)


def test_generated_profiles_read_as_tomllib_reads_them() -> None:
    for profile in generate(600, seed=11):
        if profile.fmt == "toml":
            _same(profile.raw.decode("utf-8", "surrogateescape"))


_EDIT_CHARS = st.sampled_from([*"\"'[]=#.,_+-eE01 9\t\n\r\\{}:ax", "\x00", "\x7f", "ü"])


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3), _EDIT_CHARS), max_size=4),
)
def test_random_edits_of_a_profile_read_as_tomllib_reads_them(
    seed: int, edits: list[tuple[float, int, str]]
) -> None:
    base = generate(1, seed=seed)[0]
    text = base.raw.decode("utf-8", "surrogateescape")
    for where, action, char in edits:
        i = int(where * len(text))
        if action == 0:
            text = text[:i] + char + text[i:]  # insert
        elif action == 1:
            text = text[:i] + text[i + 1 :]  # delete
        elif action == 2:
            text = text[:i] + char + text[i + 1 :]  # replace
        else:
            lines = text.split("\n")
            line = random.Random(i).choice(lines)
            text = text + "\n" + line  # a line again: a duplicate key or table, or not
    _same(text)


def test_plain_profiles_are_read_without_tomllib(monkeypatch: pytest.MonkeyPatch) -> None:
    library = sorted((ROOT / "profiles").glob("*.toml"))
    expected = [tomllib.loads(p.read_text(encoding="utf-8")) for p in library]

    def refuse(text: str) -> dict[str, object]:
        raise AssertionError("tomllib was used")

    monkeypatch.setattr(plaintoml.tomllib, "loads", refuse)
    assert [plaintoml.loads(p.read_text(encoding="utf-8")) for p in library] == expected
