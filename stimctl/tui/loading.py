"""ProfileLoads: validate-and-load a profile in a device worker, one at a time, the newest wins."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stimctl.tui.messages import ProfileLoaded

if TYPE_CHECKING:
    from stimctl.controller import Controller
    from stimctl.rules.profile import Profile


def profile_name(path: Path | Profile) -> str:
    """A profile's name in the event log: its file, or the course stage's profile."""
    return path.name if isinstance(path, Path) else f"course stage ({path.name})"


class ProfileLoads:
    """The newest load request and the lock that runs loads one at a time.

    ``want`` (UI thread) records a request; ``load`` (worker) skips a request superseded while
    it waited, so the last profile the controller loads is the newest one asked for;
    ``is_newest`` (UI thread) says whether a result still answers the newest request.
    """

    def __init__(self, controller: Callable[[], Controller | None]) -> None:
        self._controller = controller  # read under the lock: it may connect meanwhile
        self._lock = threading.Lock()
        self._wanted: tuple[Path | Profile, tuple[str, ...]] | None = None

    def want(self, path: Path | Profile, patient: tuple[str, ...]) -> None:
        self._wanted = (path, patient)

    def is_newest(self, loaded: ProfileLoaded | None) -> bool:
        return loaded is not None and (loaded.path, loaded.patient) == self._wanted

    def load(self, path: Path | Profile, patient: tuple[str, ...]) -> ProfileLoaded | None:
        """Worker body: validate and load ``path``; None when a newer request superseded it.
        Not connected: validated against the site envelope only, nothing loaded."""
        from stimctl import Report
        from stimctl.host.errors import StimctlError, ValidationRefused
        from stimctl.rules.profile import ProfileError
        from stimctl.rules.validation import validate_file, validate_profile

        with self._lock:
            if self._wanted != (path, patient):
                return None
            ctrl = self._controller()
            if ctrl is None:
                if isinstance(path, Path):
                    report = validate_file(path, patient=patient)
                else:
                    report = validate_profile(path, patient=patient)
                notice = "Not connected: validated against the site envelope only."
                return ProfileLoaded(path, patient, report, False, notice, True)
            try:
                report = ctrl.load(path, patient=patient)
            except ProfileError as error:
                report = Report(error.violations, None, str(path))
            except ValidationRefused as error:
                report = error.report
            except StimctlError as error:  # InterlockError, RecordFailed: nothing was loaded
                return ProfileLoaded(path, patient, None, False, f"Cannot load now: {error}", True)
            else:
                return ProfileLoaded(path, patient, report, report.ok, "", not report.ok)
        return ProfileLoaded(
            path, patient, report, False, "Fix the errors in the profile; it cannot be armed.", True
        )
