"""TELEMETRY's per-channel figures are kept between reports (ChannelOutput.figures): after any
sequence of settings, slewing, zeroing, drift, injections and pulses, a report's records equal the
ones computed from the channel's fields at that moment."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim import Device, DeviceConfig, reports
from firmware_sim.limits import HardwareLimits
from firmware_sim.output import FIGURES, OutputStage
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import IMPEDANCE_OPEN, Ack, FrameDecoder, Start, Telemetry, encode

CHANNELS = 4

_index = st.integers(0, CHANNELS - 1)
_operation = st.one_of(
    st.tuples(st.just("configure"), _index, st.integers(0, 25_000), st.integers(0, 2000),
              st.integers(0, 1000)),
    st.tuples(st.just("slew"), st.integers(1, 400)),
    st.tuples(st.just("zero_all")),
    st.tuples(st.just("pulse"), st.integers(1, 5000)),
    st.tuples(st.just("count")),
    st.tuples(st.just("impedance"), _index, st.floats(0, 200_000)),
    st.tuples(st.just("drift"), _index, st.floats(-50_000, 50_000), st.integers(1, 5000)),
    st.tuples(st.just("overcurrent"), _index, st.booleans()),
    st.tuples(st.just("reset_session"), st.integers(0, 1)),
)  # fmt: skip


def _expected(stage: OutputStage) -> list[int]:
    """The records from the channels' fields, counters brought up to date first."""
    values: list[int] = []
    for ch in stage.channels:
        measured = ch.measured_ua
        values += (ch.target_ua, min(measured, 0xFFFF), min(int(ch.impedance_ohm), IMPEDANCE_OPEN),
                   ch.pulses & 0xFFFFFFFF)  # fmt: skip
    return values


def _reported(stage: OutputStage) -> list[int]:
    """The records ``telemetry_records`` appends (packed figures, pulses), as plain values."""
    values: list[int | bytes] = []
    stage.telemetry_records(values)
    out: list[int] = []
    for figures, pulses in zip(values[::2], values[1::2], strict=True):
        assert isinstance(figures, bytes) and isinstance(pulses, int)
        out += (*FIGURES.unpack(figures), pulses)
    return out


def _apply(stage: OutputStage, op: tuple[object, ...], tick: list[int]) -> None:
    name, *args = op
    ch = stage.outputs
    if name == "configure":
        i, target, freq, pw = args
        stage.configure(i, target, freq, pw)  # type: ignore[arg-type]
    elif name == "slew":
        for _ in range(args[0]):  # type: ignore[call-overload]
            stage.slew()
            stage.pulse(tick[0], 1)
            tick[0] += 1
    elif name == "zero_all":
        stage.zero_all()
    elif name == "pulse":
        stage.pulse(tick[0], args[0])  # type: ignore[arg-type]
        tick[0] += args[0]  # type: ignore[operator]
    elif name == "count":
        stage.count_pulses()
    elif name == "impedance":  # as faults.py injects an electrode
        ch[args[0]].impedance_ohm = args[1]  # type: ignore[index]
        stage.invalidate()
    elif name == "drift":
        ch[args[0]].drift_ohm_per_s = args[1]  # type: ignore[index]
        stage.invalidate()
        stage.drift(args[2])  # type: ignore[arg-type]
    elif name == "overcurrent":
        ch[args[0]].overcurrent = args[1]  # type: ignore[index]
    else:
        stage.reset_session(args[0])  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(_operation, max_size=40))
def test_telemetry_records_equal_the_figures_computed_from_the_channels(
    operations: list[tuple[object, ...]],
) -> None:
    stage = OutputStage(HardwareLimits(), 1000, [1500.0, 800.0, 70_000.0, 2200.5])
    tick = [0]
    for op in operations:
        _apply(stage, op, tick)
        reported = _reported(stage)  # before counting: the uncounted run included
        assert reported == _expected(stage), op
        assert _reported(stage) == _expected(stage), op  # after counting, from kept figures


def test_setting_a_reported_field_clears_the_kept_figures() -> None:
    stage = OutputStage(HardwareLimits(), 1000, [1500.0])
    ch = stage.outputs[0]
    before = FIGURES.unpack(ch.figures)
    ch.impedance_ohm = 99_999.0
    assert FIGURES.unpack(ch.figures) == (before[0], before[1], IMPEDANCE_OPEN)
    ch.delivered_ua = 70_000
    ch.overcurrent = True
    assert FIGURES.unpack(ch.figures)[1] == 0xFFFF
    ch.target_ua = 1230
    assert FIGURES.unpack(ch.figures)[0] == 1230


def test_a_telemetry_frame_is_the_codec_s_frame_of_the_channels_figures() -> None:
    host = ScriptedHost(Device(DeviceConfig(impedance_ohm=(1500.0, 812.6, 2200.0, 1000.0))))
    host.open_session(0b1111)
    for i in range(6):
        block = uniform_block(i, 4, amplitude_ua=300 + 100 * i, frequency_dhz=1000)
        assert isinstance(host.command(block), Ack)
    assert isinstance(host.command(Start()), Ack)
    dev = host.device
    dev.run_ticks(77)
    dev.output_stage.outputs[2].overcurrent = True  # measured above set (read, not yet a fault)
    frame = reports.telemetry_frame(dev)
    (msg,) = FrameDecoder().feed(frame)
    assert isinstance(msg, Telemetry)
    assert encode(msg) == frame  # the codec packs the same bytes
    assert [(c.set_ua, c.measured_ua, c.impedance_ohm, c.pulses) for c in msg.channels] == [
        (ch.target_ua, ch.measured_ua, int(ch.impedance_ohm), ch.pulses)
        for ch in dev.output_stage.channels
    ]
    assert msg.channels[2].measured_ua > msg.channels[2].set_ua > 0
    assert all(c.pulses > 0 for c in msg.channels)
