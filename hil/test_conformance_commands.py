"""Conformance: every command is answered exactly once, ACK or NAK, as the state table says."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from hil.blockstreamer import Streamer
from hil.devicelink import DeviceLink, raw_frame
from stimctl.protocol import (
    Ack,
    Adjust,
    Arm,
    ClearFault,
    Disarm,
    EStop,
    Goodbye,
    Heartbeat,
    ImpedanceCheck,
    Message,
    Nak,
    NakReason,
    Pause,
    Resume,
    Start,
    State,
    Stop,
    Telemetry,
)

STATES = (State.IDLE, State.ARMED, State.RUNNING, State.PAUSED, State.FAULT, State.ESTOP)
LATCHED = (State.FAULT, State.ESTOP)

# docs/PROTOCOL.md "Commands and answers": the states in which each command is accepted.
ACCEPTED_IN: dict[str, frozenset[State]] = {
    "HEARTBEAT": frozenset(STATES),
    "GOODBYE": frozenset({State.IDLE}),
    "IMPEDANCE_CHECK": frozenset({State.IDLE, State.ARMED}),
    "ARM": frozenset({State.IDLE}),
    "DISARM": frozenset({State.ARMED}),
    "BLOCK": frozenset({State.ARMED, State.RUNNING, State.PAUSED}),
    "START": frozenset({State.ARMED}),
    "PAUSE": frozenset({State.RUNNING}),
    "RESUME": frozenset({State.PAUSED}),
    "STOP": frozenset({State.RUNNING, State.PAUSED}),
    "ESTOP": frozenset(STATES),
    "CLEAR_FAULT": frozenset(LATCHED),
    "ADJUST": frozenset({State.ARMED, State.RUNNING}),  # not PAUSED (issue 10)
}

Builder = Callable[[DeviceLink, Streamer | None], Message]


def _block(link: DeviceLink, streamer: Streamer | None) -> Message:
    if streamer is None:
        return link.block(0)
    streamer.stop()  # the test sends the next block itself
    return link.block(streamer.index)


def _start(link: DeviceLink, streamer: Streamer | None) -> Message:
    if link.telemetry().state == State.ARMED:
        link.command(link.block(0))  # START needs a queued block
    return Start()


def _arm(link: DeviceLink, streamer: Streamer | None) -> Message:
    if link.telemetry().state == State.IDLE:
        link.check_impedance(1)  # ARM needs a passed impedance check
    return Arm(channel_mask=1, shape=0)


BUILDERS: dict[str, Builder] = {
    "HEARTBEAT": lambda link, s: Heartbeat(),
    "GOODBYE": lambda link, s: Goodbye(),
    "IMPEDANCE_CHECK": lambda link, s: ImpedanceCheck(channel_mask=1),
    "ARM": _arm,
    "DISARM": lambda link, s: Disarm(),
    "BLOCK": _block,
    "START": _start,
    "PAUSE": lambda link, s: Pause(),
    "RESUME": lambda link, s: Resume(),
    "STOP": lambda link, s: Stop(ramp_ms=50),
    "ESTOP": lambda link, s: EStop(),
    "CLEAR_FAULT": lambda link, s: ClearFault(),
    "ADJUST": lambda link, s: Adjust(channel=1, gain_permille=1000),
}


def expected_answer(command: str, state: State) -> NakReason | None:
    """None for ACK, else the NAK reason docs/PROTOCOL.md prescribes."""
    if state in ACCEPTED_IN[command]:
        return None
    return NakReason.FAULT_LATCHED if state in LATCHED else NakReason.BAD_STATE


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("command", list(ACCEPTED_IN))
def test_command_is_answered_as_the_state_table_says(
    device_link: DeviceLink, command: str, state: State
) -> None:
    streamer = device_link.enter(state)
    msg = BUILDERS[command](device_link, streamer)
    answer = device_link.request(msg)
    expected = expected_answer(command, state)
    if expected is None:
        assert isinstance(answer, Ack), f"{command} in {state.name}: {answer}"
    else:
        assert isinstance(answer, Nak), f"{command} in {state.name}: {answer}"
        assert answer.reason == expected


def test_every_command_is_answered_exactly_once(device_link: DeviceLink) -> None:
    since = device_link.mark()
    seqs = [device_link.send(Heartbeat()) for _ in range(20)]
    device_link.answer_to(seqs[-1], since=since)
    time.sleep(0.1)
    answered = [
        m.ack_seq for m in device_link.messages(Ack, since) + device_link.messages(Nak, since)
    ]
    assert sorted(answered) == sorted(seqs)


def test_answer_echoes_the_command_type(device_link: DeviceLink) -> None:
    answer = device_link.request(Heartbeat())
    assert answer.ack_type == Heartbeat.TYPE


def test_unknown_message_type_is_refused(device_link: DeviceLink) -> None:
    since = device_link.mark()
    seq = device_link.next_seq()
    device_link.write_raw(raw_frame(0x7E, seq))
    answer = device_link.answer_to(seq, since=since)
    assert isinstance(answer, Nak) and answer.reason == NakReason.UNKNOWN_TYPE


def test_payload_that_does_not_parse_is_refused(device_link: DeviceLink) -> None:
    since = device_link.mark()
    seq = device_link.next_seq()
    device_link.write_raw(raw_frame(Arm.TYPE, seq, b"\x01"))  # ARM needs 2 payload bytes
    answer = device_link.answer_to(seq, since=since)
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_PAYLOAD


def test_device_to_host_message_type_is_refused(device_link: DeviceLink) -> None:
    since = device_link.mark()
    seq = device_link.next_seq()
    device_link.write_raw(raw_frame(Ack.TYPE, seq, b"\x00\x00\x02"))
    answer = device_link.answer_to(seq, since=since)
    assert isinstance(answer, Nak)
    assert answer.reason in (NakReason.NOT_FROM_HOST, NakReason.UNKNOWN_TYPE)


def test_frame_with_a_bad_crc_is_never_answered(device_link: DeviceLink) -> None:
    since = device_link.mark()
    seq = device_link.next_seq()
    device_link.write_raw(raw_frame(EStop.TYPE, seq, corrupt_crc=True))
    assert device_link.wait_for(lambda m: getattr(m, "ack_seq", None) == seq, 0.2, since) is None


def test_frame_with_a_bad_crc_is_never_acted_on(device_link: DeviceLink) -> None:
    device_link.write_raw(raw_frame(EStop.TYPE, device_link.next_seq(), corrupt_crc=True))
    time.sleep(0.1)
    assert device_link.expect(Telemetry).state == State.IDLE
