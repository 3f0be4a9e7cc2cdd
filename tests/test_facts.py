"""Each fact is written once: its home defines it, nothing else repeats it, the docs' tables match.

Facts (issue 9, item 4): the runtime policy limits (rule table), wire meanings, exit codes, the
simulator's options and its fault kinds (message fields: tests/test_protocol_codec.py). Each has
a registry; the checks below read the source with ``ast`` (a literal or a list of names written
again elsewhere fails) and parse the docs' tables.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.control import control_commands, execute
from firmware_sim.faults import ALIASES, FAULT_KINDS, KINDS, FaultSpec, FaultSpecError
from firmware_sim.options import CLI_FLAGS, OPTIONS, URL_PARAMETERS
from stimctl.host.status import EXIT_CODES, ExitCode, Outcome
from stimctl.host.verification import VERIFY_EXITS
from stimctl.rules import policies, ruletable
from stimctl.rules.policies import POLICIES

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("stimctl", "firmware_sim")


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text())


def _assignments(tree: ast.Module) -> Iterator[tuple[str, ast.expr]]:
    """Every ``NAME = value`` (plain or annotated) anywhere in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                values = (
                    node.value.elts
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [node.value] * len(names)
                )
                for name, value in zip(names, values, strict=True):
                    if isinstance(name, ast.Name):
                        yield name.id, value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            yield node.target.id, node.value


def _literal_definitions(names: set[str] | re.Pattern[str]) -> dict[str, list[str]]:
    """name -> modules that bind it to a literal number (a definition, not a re-export)."""
    found: dict[str, list[str]] = {}
    for module, tree in _modules():
        for name, value in _assignments(tree):
            wanted = name in names if isinstance(names, set) else names.fullmatch(name)
            if wanted and isinstance(value, ast.Constant) and isinstance(value.value, int | float):
                found.setdefault(name, []).append(module)
    return found


def _string_collections(tree: ast.Module) -> Iterator[set[str]]:
    """The string elements of every tuple, list, set literal and dict literal's keys."""
    for node in ast.walk(tree):
        items: list[ast.expr] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = list(node.elts)
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        yield {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}


def _table(doc: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with ``header``, as cells."""
    text = (REPO / doc).read_text()
    start = text.index(header)
    lines = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


# --- runtime policy limits: the rule table -----------------------------------------------------

POLICY_CONSTANTS = {
    "adjust-step": "ADJUST_STEP_MA",
    "adjust-gain-max": "ADJUST_GAIN_MAX_PERMILLE",
    "impedance-max-age": "IMPEDANCE_MAX_AGE_S",
    "stop-ramp-default": "DEFAULT_STOP_RAMP_MS",
    "device-silence": "DEVICE_SILENCE_S",
    "stream-target": "STREAM_TARGET_MS",
}


def test_every_runtime_policy_limit_has_a_row_with_its_source_in_the_rule_table() -> None:
    assert set(POLICIES) == set(POLICY_CONSTANTS)
    for name, policy in POLICIES.items():
        assert policy.source.startswith(ruletable.POLICY), name
        assert getattr(policies, POLICY_CONSTANTS[name]) == policy.value, name


def _policy_copies(old_names: set[str]) -> dict[str, list[str]]:
    found = _literal_definitions(set(POLICY_CONSTANTS.values()) | old_names)
    allowed = "stimctl/rules/policies.py"
    return {name: modules for name, modules in found.items() if modules != [allowed]}


def test_each_policy_constant_is_defined_only_in_the_rule_table() -> None:
    assert _policy_copies({"DEFAULT_TARGET_MS"}) == {}  # the streamer's former copy


def test_the_tui_imports_the_adjust_step() -> None:
    assert _policy_copies({"STEP_MA"}) == {}


def test_safety_md_policy_table_matches_the_rule_table() -> None:
    rows = _table("docs/SAFETY.md", "| policy | value |")
    shown = {row[0].strip("`"): row for row in rows}
    assert list(shown) == list(POLICIES)
    for name, policy in POLICIES.items():
        _, value, constant, meaning, source = shown[name]
        assert value == f"{policy.value:g} {policy.unit}", name
        assert constant == f"`{POLICY_CONSTANTS[name]}`", name
        assert (meaning, source) == (policy.summary, policy.source), name


# --- wire meanings: stimctl/protocol -------------------------------------------------------------


def _classes(name: str) -> list[str]:
    return [
        module
        for module, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == name
    ]


@pytest.mark.parametrize(
    "name", ["LimitField", "NakReason", "Fault", "State", "Shape", "ImpedanceStatus"]
)
def test_each_wire_meaning_is_a_class_of_the_protocol_package_only(name: str) -> None:
    assert _classes(name) == ["stimctl/protocol/constants.py"]


def test_accumulator_wrap_and_asymmetric_ratio_are_written_only_in_the_protocol() -> None:
    found = _literal_definitions({"ACC_WRAP", "ASYMMETRIC_RECOVERY_RATIO", "ASYMMETRIC_RATIO"})
    assert found == {
        "ACC_WRAP": ["stimctl/protocol/constants.py"],
        "ASYMMETRIC_RECOVERY_RATIO": ["stimctl/protocol/constants.py"],
    }


def test_each_message_field_is_declared_once_with_its_wire_format() -> None:
    from dataclasses import fields

    from stimctl.protocol import CATALOGUE
    from stimctl.protocol.messages import ChannelImpedance, ChannelSetting, ChannelTelemetry

    tree = dict(_modules())["stimctl/protocol/messages.py"]
    layouts = [ast.unparse(value) for name, value in _assignments(tree) if name == "FIELDS"]
    assert layouts == [
        "()",
        "()",
    ]  # only Item's and Message's empty defaults: nothing written twice
    for cls in [*CATALOGUE.values(), ChannelSetting, ChannelTelemetry, ChannelImpedance]:
        declared = [f.name for f in fields(cls) if f.name != "seq"]
        items = ["channels"] if getattr(cls, "ITEM", None) else []
        on_wire = [name for name, _ in cls.FIELDS] + items
        assert on_wire == declared, cls.__name__


# --- exit codes ---------------------------------------------------------------------------------


def test_exit_codes_are_defined_only_in_host_status() -> None:
    assert _classes("ExitCode") == ["stimctl/host/status.py"]
    assert _classes("VerifyExit") == ["stimctl/host/verification.py"]
    found = _literal_definitions(re.compile(r"EXIT_\w+"))
    assert found == {}  # every EXIT_* name is bound to an ExitCode member, not a number


def test_no_subcommand_returns_a_bare_number() -> None:
    bare = []
    for module, tree in _modules():
        if not module.startswith("stimctl/cli/"):
            continue
        for node in ast.walk(tree):
            value = node.value if isinstance(node, ast.Return) else None
            if isinstance(value, ast.Constant) and type(value.value) is int:
                bare.append(f"{module}:{node.lineno}")
    assert bare == []


def test_outcomes_map_onto_the_shared_exit_codes() -> None:
    assert {o: o.exit_code for o in Outcome} == {
        Outcome.COMPLETED: ExitCode.OK,
        Outcome.STOPPED: ExitCode.ABORTED,
        Outcome.FAULT: ExitCode.FAULT,
        Outcome.ESTOP: ExitCode.FAULT,
        Outcome.ABORTED: ExitCode.ABORTED,
    }


def test_api_md_exit_code_table_matches_exit_codes() -> None:
    rows = _table("docs/API.md", "| exit | name | meaning |")
    assert rows == [[str(int(c)), f"`{c.name}`", text] for c, text in EXIT_CODES.items()]


def test_api_md_verify_exit_table_matches_verify_exits() -> None:
    rows = _table("docs/API.md", "| exit | meaning |")
    assert rows == [[str(int(c)), text] for c, text in VERIFY_EXITS.items()]


def test_stimctl_help_shows_the_exit_code_table(capsys: pytest.CaptureFixture[str]) -> None:
    from stimctl.cli import main

    assert main(["--help"]) == ExitCode.OK
    shown = " ".join(capsys.readouterr().out.split())
    for code, text in EXIT_CODES.items():
        assert f"{int(code)} {text}" in shown


# --- simulator options --------------------------------------------------------------------------


def test_no_module_but_options_py_lists_the_simulator_options() -> None:
    names = set(URL_PARAMETERS)
    repeated = [
        module
        for module, tree in _modules()
        if module != "firmware_sim/options.py"
        and any(len(found & names) >= 4 for found in _string_collections(tree))
    ]
    assert repeated == []


def test_host_option_list_is_the_simulator_table() -> None:
    from stimctl.host.simprocess import SIM_OPTION_FLAGS, sim_args

    assert {o.name: o.flag for o in OPTIONS if o.flag} == SIM_OPTION_FLAGS
    assert sim_args(None, {"delay_ms": "5", "seed": "7"}) == ["--delay-ms", "5", "--seed", "7"]
    with pytest.raises(ValueError, match="lockstep"):
        sim_args(None, {"lockstep": "1"})  # URL only: a separate process runs in real time


def test_sim_flags_come_from_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from firmware_sim.__main__ import build_parser

    parser = build_parser()
    flags = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    assert set(CLI_FLAGS.values()) <= set(flags)
    args = parser.parse_args(["--delay-ms", "3", "--fault", "open:2", "--fault", "reset@10"])
    assert (args.delay_ms, args.fault) == ("3", ["open:2", "reset@10"])


def test_protocol_md_url_table_matches_the_options() -> None:
    rows = _table("docs/PROTOCOL.md", "| parameter | default | meaning |")
    shown = [(row[0].strip("`").split("=")[0], row[1]) for row in rows]
    assert shown == [(o.name, o.default) for o in OPTIONS]


def test_protocol_md_command_line_lists_every_flag() -> None:
    text = (REPO / "docs/PROTOCOL.md").read_text()
    synopsis = text.split("python -m firmware_sim [", 1)[1].split("```", 1)[0]
    flags = re.findall(r"\[(--[a-z-]+)", "[" + synopsis)
    assert flags == [*CLI_FLAGS.values(), "--parent", "--pdeathsig"]


# --- fault kinds --------------------------------------------------------------------------------


def test_no_module_but_faults_py_lists_the_fault_kinds() -> None:
    kinds = set(FAULT_KINDS) | set(ALIASES)
    repeated = [
        module
        for module, tree in _modules()
        if module != "firmware_sim/faults.py"
        and any(len(found & kinds) >= 2 for found in _string_collections(tree))
    ]
    assert repeated == []


def test_protocol_md_fault_spec_table_matches_the_registry() -> None:
    rows = _table("docs/PROTOCOL.md", "| kind | alias | effect |")
    expected = [
        [f"`{k.name}`", f"`{k.alias}`" if k.alias else "", k.effect]
        for k in FAULT_KINDS.values()
        if k.in_spec
    ]
    assert rows == expected


def test_protocol_md_control_table_lists_every_registered_command() -> None:
    rows = _table("docs/PROTOCOL.md", "| command | effect |")
    shown = [cmd for row in rows for cmd in re.findall(r"`([^`]+)`", row[0])]
    assert shown == control_commands()
    injects = {row[0].strip("`"): row[1] for row in rows if row[0].startswith("`inject ")}
    for kind in FAULT_KINDS.values():
        assert injects[f"inject {kind.name} {kind.args}".rstrip()] == kind.effect


def test_fault_spec_and_help_name_every_spec_kind() -> None:
    from firmware_sim.__main__ import build_parser

    help_text = " ".join(build_parser().format_help().split())
    for kind in KINDS:
        assert FaultSpec.parse(f"{kind}:1@5").kind == kind
        assert kind in help_text
    with pytest.raises(FaultSpecError, match="impedance"):
        FaultSpec.parse("impedance:1")  # a control-socket kind, not a spec kind


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_control_socket_injects_every_registered_kind(kind: str) -> None:
    from firmware_sim.clock import VirtualClock
    from firmware_sim.config import DeviceConfig
    from firmware_sim.device import Device

    device = Device(DeviceConfig(), VirtualClock())
    try:
        spec = FAULT_KINDS[kind]
        args = ["900"] * spec.takes_value + ["2"] * spec.per_channel
        assert execute(device, " ".join(["inject", kind, *args])) == "ok"
        assert execute(device, " ".join(["inject", kind, *args, "1"])).startswith("error")
    finally:
        device.close()


# --- firmware_sim's handlers see a Device through DeviceCore ------------------------------------


def test_a_device_has_every_member_its_handlers_rely_on() -> None:
    from firmware_sim.clock import VirtualClock
    from firmware_sim.config import DeviceConfig
    from firmware_sim.core import DeviceCore
    from firmware_sim.device import Device
    from firmware_sim.faults import FaultTarget

    device = Device(DeviceConfig(), VirtualClock())
    try:
        for protocol in (DeviceCore, FaultTarget):
            members = {n for n in vars(protocol) if not n.startswith("_")}
            members |= set(protocol.__annotations__)
            missing = sorted(n for n in members if not hasattr(device, n))
            assert missing == [], protocol.__name__
    finally:
        device.close()
