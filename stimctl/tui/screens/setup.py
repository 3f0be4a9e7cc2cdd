"""Set-up screen: device panel, profile choice, patient flags, validation report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select
from textual.widgets.option_list import Option

from stimctl.rules.validation import PATIENT_FLAGS
from stimctl.tui.screens.base import StimScreen
from stimctl.tui.widgets import CoursePanel, DevicePanel, ValidationReport

#: The profile list's entry for the course stage's stored profile.
COURSE_STAGE = "course-stage"

PROFILE_SUFFIXES = (".toml", ".json")


def list_profiles(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in PROFILE_SUFFIXES)


class SetupScreen(StimScreen):
    """Choose a profile and patient flags; continue only with a valid, acknowledged profile."""

    TITLE_TEXT = "Set-up"
    KEYS_HINT = "Tab move · Enter choose · F5 preflight · Ctrl+Q quit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "preflight", "Preflight"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="setup-body"):
            yield DevicePanel(id="device-panel")
            with VerticalScroll(id="setup-main"):
                if self.stim.course is not None:
                    yield CoursePanel(self.stim.course, id="course-panel")
                yield Label(
                    "Profile (from the library, or type a path and press Enter)", classes="section"
                )
                yield OptionList(id="profile-list")
                yield Input(placeholder="path/to/profile.toml", id="profile-path")
                patient = self.stim.patient_id
                yield Label(
                    f"Patient {patient} (flags from the clinic database)" if patient else "Patient",
                    classes="section",
                    id="patient-label",
                    markup=False,
                )
                if self.stim.clinic is not None and patient is None:
                    yield Select[str]([], prompt="Clinic patient (none: set the flags below)",
                                      id="patient-picker")  # fmt: skip
                with Horizontal(id="patient-flags"):
                    for flag in PATIENT_FLAGS:
                        yield Checkbox(flag, id=f"flag-{flag}")
                yield ValidationReport(id="report")
                yield Checkbox(
                    "I have read the warnings above and accept them",
                    id="ack-warnings",
                    disabled=True,
                )
                with Vertical(id="setup-actions"):
                    yield Button(
                        "Continue to preflight  (F5)",
                        id="to-preflight",
                        variant="primary",
                        disabled=True,
                    )
                    yield Label("", id="notice", markup=False)

    def on_mount(self) -> None:
        options = self.query_one("#profile-list", OptionList)
        stage = self.stim.course.stage_profile if self.stim.course is not None else None
        if stage is not None:
            number = self.stim.course.number
            options.add_option(Option(f"{stage.profile.name} (course plan, session {number})",
                                      id=COURSE_STAGE))  # fmt: skip
        for path in list_profiles(self.stim.profiles_dir):
            options.add_option(Option(path.name, id=str(path)))
        options.focus()
        self._fix_flags()
        for picker in self.query("#patient-picker").results(Select):
            try:
                codes = self.stim.clinic.patients() if self.stim.clinic else []
            except Exception as error:  # the database went away: said, the flags stay manual
                self.say(f"Clinic database: {error}", error=True)
                codes = []
            picker.set_options((code, code) for code in codes)
        self.device_changed()  # the connection may have finished while this screen composed

    def _fix_flags(self) -> None:
        """The clinic's patient: its flags in force, checked and not editable."""
        if self.stim.patient_flags is None:
            return
        for flag in PATIENT_FLAGS:
            box = self.query_one(f"#flag-{flag}", Checkbox)
            box.value, box.disabled = flag in self.stim.patient_flags, True

    def on_select_changed(self, event: Select.Changed) -> None:
        """A patient picked from the clinic database: this run's row is theirs, their flags are
        the ones validation uses (the pick is final for this run of the UI)."""
        event.stop()
        if event.select.id != "patient-picker" or not isinstance(event.value, str):
            return
        clinic = self.stim.clinic
        assert clinic is not None
        if self.stim.armed_once:
            self.say("A session already ran in this run of the UI without a patient: restart"
                     " stimctl tui for a patient.", error=True)  # fmt: skip
            return
        try:
            flags = clinic.choose(event.value)
        except Exception as error:  # unknown patient meanwhile, database gone: one line
            self.say(f"Clinic database: {error}", error=True)
            return
        self.stim.patient_id, self.stim.patient_flags = event.value, flags
        event.select.disabled = True
        self.query_one("#patient-label", Label).update(
            f"Patient {event.value} (flags from the clinic database)"
        )
        self._fix_flags()
        self.stim.log_event(f"patient {event.value}: flags {', '.join(sorted(flags)) or 'none'}")
        if self.stim.profile_path is not None:
            self.choose(self.stim.profile_path)

    # --- inputs -----------------------------------------------------------------------------
    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id == COURSE_STAGE and self.stim.course is not None:
            self.choose(self.stim.course.stage_profile.profile)
        elif event.option.id:
            self.choose(Path(event.option.id))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "profile-path" and event.value.strip():
            event.stop()
            self.choose(Path(event.value.strip()).expanduser())

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        if event.checkbox.id == "ack-warnings":
            self.stim.warnings_acknowledged = event.value
            self.refresh_gate()
        elif self.stim.profile_path is not None:
            self.choose(self.stim.profile_path)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "to-preflight":
            event.stop()
            self.action_preflight()

    # --- logic ------------------------------------------------------------------------------
    def patient_flags(self) -> tuple[str, ...]:
        return tuple(f for f in PATIENT_FLAGS if self.query_one(f"#flag-{f}", Checkbox).value)

    def choose(self, path: Any) -> None:
        """Load and validate ``path`` through the controller; show the report either way."""
        message, is_error = self.stim.load_profile(path, self.patient_flags())
        self.query_one("#report", ValidationReport).show(self.stim.report)
        ack = self.query_one("#ack-warnings", Checkbox)
        report = self.stim.report
        ack.disabled = report is None or not report.ok or not report.warnings
        ack.value = False
        self.stim.warnings_acknowledged = False
        self.say(message, error=is_error)
        self.refresh_gate()

    def refresh_gate(self) -> None:
        self.query_one("#to-preflight", Button).disabled = not self.stim.can_preflight()

    def update_status(self, status: Any) -> None:
        self.query_one(DevicePanel).show_status(status)

    def device_changed(self) -> None:
        """The controller connected (or failed): refresh the panel and the gate."""
        self.query_one(DevicePanel).show(self.stim.controller, self.stim.last_status)
        if self.stim.profile_path is not None:
            self.choose(self.stim.profile_path)
        self.refresh_gate()

    def action_preflight(self) -> None:
        reason = self.stim.preflight_refusal()
        if reason:
            self.say(reason, error=True)
            return
        from stimctl.tui.screens.preflight import PreflightScreen

        self.app.push_screen(PreflightScreen())
