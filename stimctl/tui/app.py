"""StimApp: the clinician terminal UI; App-level E-STOP, telemetry hand-off, device workers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, ParamSpec, cast

from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message_pump import MessagePump
from textual.reactive import reactive
from textual.timer import Timer

from stimctl.host.status import Outcome
from stimctl.tui.format import ACTIVE_STATES, LATCHED_STATES, state_name
from stimctl.tui.loading import ProfileLoads, profile_name
from stimctl.tui.messages import (
    DeviceCallDone,
    DeviceEvent,
    ProfileLoaded,
    TelemetryReady,
    TelemetrySlot,
)
from stimctl.tui.screens import ConfirmModal, FaultScreen, SetupScreen, SummaryScreen
from stimctl.tui.screens.base import StimScreen

if TYPE_CHECKING:
    from stimctl import Report
    from stimctl.clinic.courses import SessionContext
    from stimctl.controller import Controller
    from stimctl.host.status import Event, SessionSummary, Status
    from stimctl.rules.profile import Profile
    from stimctl.tui.contract import PatientPicker, StimAppContract

P = ParamSpec("P")

#: Telemetry reaches the screen at most this often; newer samples replace older ones meanwhile.
UI_REFRESH_S = 0.1
#: E-STOP keys: non-printable, so a focused Input never swallows them; bound with priority.
ESTOP_KEYS = "f12,ctrl+backslash"
#: Signals that end the UI as they end `stimctl run`: output to zero, record closed, exit 4.
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
EXIT_ABORTED = Outcome.ABORTED.exit_code


class StimApp(App[int]):
    """Set-up -> preflight -> run -> summary, with a fault screen that can take over anytime."""

    CSS_PATH = "app.tcss"
    TITLE = "stimctl"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(ESTOP_KEYS, "estop", "E-STOP", priority=True, id="estop"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    target_text = reactive("connecting…")
    state_text = reactive("DISCONNECTED")
    event_count = reactive(0)

    def __init__(
        self,
        connect: Callable[[], Controller],
        *,
        operator: str = "",
        profiles_dir: str | Path = "profiles",
        expect_simulator: bool = True,
        clock: Callable[[], datetime] | None = None,
        handle_signals: bool = False,
        patient_id: str | None = None,
        patient_flags: frozenset[str] | None = None,
        course: SessionContext | None = None,
        clinic: PatientPicker | None = None,
    ) -> None:
        super().__init__()
        self.course = course  # a course's SessionContext: its rules join validation
        self.patient_id = patient_id  # the clinic's patient: flags from the database, fixed
        self.patient_flags = patient_flags
        self.clinic = clinic  # the clinic database's patients, for the set-up screen's picker
        self._connect = connect
        self._handle_signals = handle_signals
        self.signalled: int | None = None  # SIGTERM/SIGHUP received: stopping, then exit 4
        self.operator = operator
        self.profiles_dir = Path(profiles_dir)
        self.controller: Controller | None = None
        self.connect_error: str | None = None
        self.profile_path: Path | Profile | None = None  # a file, or the course stage's Profile
        self.report: Report | None = None
        self.loaded_ok = False
        self.warnings_acknowledged = False
        self.session_started = False
        self.armed_once = False  # a session was armed in this run (its row's patient is fixed)
        self.last_status: Status | None = None
        self.telemetry = TelemetrySlot()
        self.view_frozen = False  # screenshots: ignore telemetry and events (E-STOP still works)
        self.event_lines: list[str] = []
        self._clock = clock or datetime.now
        self._fixed_clock = clock is not None
        self._unsubscribe: list[Callable[[], None]] = []
        self._next_refresh = 0.0
        self._refresh_timer: Timer | None = None
        self._loads = ProfileLoads(lambda: self.controller)  # one at a time, the newest wins
        self._summary_pending = False
        self.set_reactive(
            StimApp.target_text, "SIMULATOR (starting)" if expect_simulator else "connecting…"
        )

    def get_default_screen(self) -> SetupScreen:
        return SetupScreen()

    def on_mount(self) -> None:
        self.log_event(f"stimctl tui started; operator {self.operator or '—'}")
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in TERMINATING_SIGNALS:
                with suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.terminate, sig)
        self.call_device(self, "connect", self._connect)

    def on_unmount(self) -> None:
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in TERMINATING_SIGNALS:
                with suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)

    def terminate(self, signum: int) -> None:
        """SIGTERM or SIGHUP (the terminal closed), as `stimctl run` takes them: output to zero
        (STOP, ramp 0; E-STOP if that cannot be delivered), the record closed with exit code 4
        (aborted), then exit 4. A second signal while stopping changes nothing."""
        if self.signalled is not None:
            return
        self.signalled = signum
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        ctrl = self.controller
        if ctrl is None:
            self.call_device(self, "signal", lambda: None)
            return
        self.log_event(f"{signal.Signals(signum).name}: output to zero, record closed")

        def stop_and_close() -> None:
            try:
                ctrl.abort()
            finally:
                ctrl.close(exit_code=EXIT_ABORTED)

        self.call_device(self, "signal", stop_and_close)

    # --- controller state as the UI sees it -------------------------------------------------
    @property
    def profile(self) -> Profile | None:
        loaded = self.controller.profile if self.controller is not None else None
        return loaded or (self.report.profile if self.report is not None else None)

    def live_state(self) -> str:
        return state_name(self.controller.state if self.controller is not None else None)

    def preflight_refusal(self) -> str | None:
        """Why the operator may not go on to preflight/ARM now (None: they may)."""
        if self.controller is None:
            return "Not connected to a device."
        if self.report is None:
            return "Choose a profile first."
        if not self.report.ok:
            return "This profile has errors: it cannot be armed."
        if not self.loaded_ok:
            return "The profile is not loaded on the controller."
        if self.report.warnings and not self.warnings_acknowledged:
            return "Acknowledge the warnings first."
        state = self.live_state()
        if state in LATCHED_STATES:
            return "Acknowledge the fault first."
        if state in ACTIVE_STATES:
            return f"The device is {state}."
        return None

    def can_preflight(self) -> bool:
        return self.preflight_refusal() is None

    def request_load(
        self, requester: MessagePump, path: Path | Profile, patient: tuple[str, ...]
    ) -> None:
        """Validate and load ``path`` in a worker; ``requester`` gets DeviceCallDone("load") with
        a ProfileLoaded (None when a newer request superseded it). Until then nothing may be
        armed."""
        self.profile_path = path
        self.loaded_ok = False
        self.warnings_acknowledged = False
        self._loads.want(path, patient)
        self.call_device(requester, "load", self._loads.load, path, patient)

    def profile_loaded(self, loaded: ProfileLoaded | None) -> bool:
        """UI thread: take a load's result unless a newer request superseded it (then False)."""
        if loaded is None or not self._loads.is_newest(loaded):
            return False
        self.report = loaded.report
        self.loaded_ok = loaded.loaded
        self.warnings_acknowledged = False
        report = loaded.report
        if report is not None and self.controller is not None:
            self.log_event(
                f"profile {profile_name(loaded.path)}: {'valid' if report.ok else 'REFUSED'}"
                f" ({len(report.errors)} errors, {len(report.warnings)} warnings)"
            )
        return True

    def arm(self) -> None:
        """Worker body: ARM with the operator's explicit confirm (guards live in the controller)."""
        self.armed_once = True
        self.require_controller().arm(confirm=True, acknowledge_warnings=self.warnings_acknowledged)

    def require_controller(self) -> Controller:
        """The connected controller (screens past set-up exist only once connected)."""
        if self.controller is None:
            raise RuntimeError("not connected")
        return self.controller

    # --- workers and messages from other threads --------------------------------------------
    def call_device(
        self, requester: MessagePump, name: str, fn: Callable[P, object], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> None:  # fmt: skip
        """Run a blocking controller call in a thread; the result comes back as DeviceCallDone
        posted to ``requester``. Every controller call that can wait on the device or the disk
        goes through here; only ``estop()`` and reading the controller's properties do not."""

        def job() -> None:
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                requester.post_message(DeviceCallDone(name, None, error))
            else:
                requester.post_message(DeviceCallDone(name, result))

        self.run_worker(job, thread=True, group="device", name=name, exit_on_error=False)

    def _telemetry_from_io(self, status: Status) -> None:
        """I/O thread: keep only the newest sample; post one TelemetryReady while none pends."""
        if self.telemetry.put(status):
            self.post_message(TelemetryReady())

    def _event_from_io(self, event: Event) -> None:
        self.post_message(DeviceEvent(event))

    def on_device_call_done(self, message: DeviceCallDone) -> None:
        if message.name == "connect":
            self._connected(message)
        elif message.name == "summary":
            self._summary_ready(message)
        elif message.name == "close":
            self.exit(0)
        elif message.name == "signal":
            if self.signalled == signal.SIGHUP:
                # the terminal is gone: Textual's shutdown would block writing to it. Output is
                # zero, the record closed and the simulator stopped: nothing is left to do.
                os._exit(EXIT_ABORTED)
            self.exit(EXIT_ABORTED)

    def _connected(self, message: DeviceCallDone) -> None:
        if not message.ok:
            self.connect_error = f"{type(message.error).__name__}: {message.error}"
            self.target_text = "NOT CONNECTED"
            self.log_event(f"connect failed: {self.connect_error}")
        else:
            ctrl = self.controller = cast("Controller", message.result)
            device = ctrl.device
            self.target_text = (
                "SIMULATOR: no patient output" if ctrl.is_simulator else f"DEVICE {device.serial}"
            )
            if self.course is not None:
                ctrl.add_rules(self.course.rules)
            self._unsubscribe = [
                ctrl.on_telemetry(self._telemetry_from_io),
                ctrl.on_event(self._event_from_io),
            ]
            self.state_text = self.live_state()
            self.log_event(f"connected to {ctrl.url} (firmware {device.firmware})")
        for screen in self.screen_stack:
            if isinstance(screen, SetupScreen) and screen.is_mounted:  # else: its on_mount shows it
                screen.device_changed()

    def on_telemetry_ready(self, _message: TelemetryReady) -> None:
        """At most one refresh per UI_REFRESH_S; until then the slot stays pending (and current)."""
        if self._refresh_timer is not None:
            return
        delay = self._next_refresh - time.monotonic()
        if delay > 0:
            self._refresh_timer = self.set_timer(delay, self._drain_telemetry)
        else:
            self._drain_telemetry()

    def _drain_telemetry(self) -> None:
        self._refresh_timer = None
        self._next_refresh = time.monotonic() + UI_REFRESH_S
        status = self.telemetry.take()
        if status is not None and not self.view_frozen:
            self.apply_status(status)

    def apply_status(self, status: Status) -> None:
        self.last_status = status
        self.state_text = state_name(status.state)
        for screen in list(self.screen_stack):
            if isinstance(screen, StimScreen):
                with suppress(NoMatches):  # a screen still composing skips one sample
                    screen.update_status(status)
        if self.state_text in LATCHED_STATES and self.live_state() in LATCHED_STATES:
            self.show_fault()

    def on_device_event(self, message: DeviceEvent) -> None:
        if self.view_frozen:
            return
        event = message.event
        kind = event.kind
        self.log_event(f"{kind}: {event.message}")
        if kind == "fault" and self.live_state() in LATCHED_STATES:
            self.show_fault()

    # --- E-STOP, faults, navigation ---------------------------------------------------------
    def action_estop(self) -> None:
        """E-STOP: controller.estop() at once (it writes ahead of queued traffic, never blocks)."""
        ctrl = self.controller
        if ctrl is not None:
            try:
                ctrl.estop()
            except Exception as error:  # shown, and the fault screen still takes over
                self.log_event(f"E-STOP error: {type(error).__name__}: {error}")
        self.log_event("E-STOP pressed")
        if ctrl is not None:
            self.show_fault("estop")

    def show_fault(self, reason: str = "") -> None:
        for screen in self.screen_stack:
            if isinstance(screen, FaultScreen):
                with suppress(NoMatches):  # not composed yet: it reads the fault on mount
                    screen.refresh_fault()
                return
        self.push_screen(FaultScreen(reason))

    def fault_acknowledged(self) -> None:
        self.log_event("operator acknowledged the fault")
        if self.session_started:
            self.show_summary()
        else:
            self.back_to_setup()

    def show_summary(self) -> None:
        """Read the summary and the record's anchor in a worker (the summary takes the
        controller's lock), then show them."""
        ctrl = self.controller
        if ctrl is None or self._summary_pending:
            return
        self._summary_pending = True
        self.call_device(self, "summary", lambda: (ctrl.summary(), ctrl.record_anchor))

    def _summary_ready(self, message: DeviceCallDone) -> None:
        self._summary_pending = False
        summary: SessionSummary | None = None
        if message.ok:
            summary, anchor = cast("tuple[SessionSummary, str | None]", message.result)
        else:
            anchor = self.controller.record_anchor if self.controller is not None else None
        self._pop_to_base()
        self.session_started = False
        self.push_screen(SummaryScreen(summary, anchor, unreadable=str(message.error or "")))

    def back_to_setup(self) -> None:
        self.session_started = False
        self._pop_to_base()
        if isinstance(self.screen, SetupScreen) and self.profile_path is not None:
            self.screen.choose(self.profile_path)

    def _pop_to_base(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    # --- log, clock, quit -------------------------------------------------------------------
    def log_event(self, text: str) -> None:
        self.event_lines.append(f"{self._clock():%H:%M:%S}  {text}")
        self.event_count += 1

    def time_text(self, when: float | None) -> str:
        """A UNIX time (FaultInfo.host_time) as the operator reads it; the fixed clock if set."""
        moment = (
            self._clock() if self._fixed_clock or when is None else datetime.fromtimestamp(when)
        )
        return f"{moment:%Y-%m-%d %H:%M:%S}"

    async def action_quit(self) -> None:
        if self.live_state() in ACTIVE_STATES:
            body = "A session is active. Quitting STOPS it (ramp down) and closes the link."
            self.push_screen(ConfirmModal("Quit stimctl?", body, "QUIT"), self._quit_confirmed)
            return
        self._quit_confirmed(True)

    def _quit_confirmed(self, confirmed: bool | None) -> None:
        if not confirmed:
            return
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self.controller is None:
            self.exit(0)
            return
        self.log_event("closing: output to zero, record closed")
        self.call_device(self, "close", self.controller.close)


if TYPE_CHECKING:

    def _keeps_the_contract(app: StimApp) -> StimAppContract:
        """For type checkers: StimApp provides everything screens and widgets may ask of it."""
        return app
