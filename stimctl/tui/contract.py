"""StimAppContract: what screens and widgets may ask of the app (a Protocol; the app never imports
this module back, so typing a screen against the app makes no import cycle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, Protocol, cast

if TYPE_CHECKING:
    from textual.dom import DOMNode
    from textual.message_pump import MessagePump

    from stimctl import Report
    from stimctl.controller import Controller
    from stimctl.host.status import Status
    from stimctl.rules.profile import Profile
    from stimctl.tui.messages import ProfileLoaded

P = ParamSpec("P")


class PatientPicker(Protocol):
    """The clinic database as the set-up screen's patient picker sees it."""

    def patients(self) -> list[str]: ...

    def choose(self, code: str) -> frozenset[str]:
        """Make ``code`` this run's patient; its flags in force."""
        ...


class StimAppContract(Protocol):
    """The state and calls of ``stimctl.tui.app.StimApp`` that screens and widgets use.

    Device data reaches a screen three ways: ``update_status`` (telemetry, newest only), a
    ``DeviceCallDone`` message after ``call_device`` (a blocking controller call run in a worker
    thread), and the in-memory properties of ``controller`` (state, fault, profile, device),
    which never block.
    """

    operator: str
    profiles_dir: Path
    controller: Controller | None
    connect_error: str | None
    profile_path: Path | Profile | None
    report: Report | None
    loaded_ok: bool
    warnings_acknowledged: bool
    session_started: bool
    last_status: Status | None
    patient_id: str | None  # the clinic's patient (flags from the database, fixed)
    patient_flags: frozenset[str] | None
    clinic: PatientPicker | None
    armed_once: bool
    event_lines: list[str]
    event_count: int
    target_text: str
    state_text: str

    @property
    def profile(self) -> Profile | None: ...

    def preflight_refusal(self) -> str | None: ...

    def can_preflight(self) -> bool: ...

    def require_controller(self) -> Controller: ...

    def request_load(
        self, requester: MessagePump, path: Path | Profile, patient: tuple[str, ...]
    ) -> None: ...

    def profile_loaded(self, loaded: ProfileLoaded | None) -> bool: ...

    def arm(self) -> None: ...

    def call_device(
        self, requester: MessagePump, name: str, fn: Callable[P, object], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> None: ...  # fmt: skip

    def log_event(self, text: str) -> None: ...

    def time_text(self, when: float | None) -> str: ...

    def action_estop(self) -> None: ...

    def show_summary(self) -> None: ...

    def fault_acknowledged(self) -> None: ...

    def back_to_setup(self) -> None: ...


def stim_app(node: DOMNode) -> StimAppContract:
    """The running StimApp of ``node`` (a screen or widget), typed by its contract."""
    return cast("StimAppContract", node.app)
