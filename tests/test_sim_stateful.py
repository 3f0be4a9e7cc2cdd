"""Stateful property test of the device: random command sequences and garbage never break safety."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from firmware_sim import Device, DeviceConfig
from firmware_sim.interlock import OUTPUT_STATES
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    GAIN_UNITY,
    PROTOCOL_VERSION,
    Ack,
    Adjust,
    Arm,
    Block,
    ChannelSetting,
    ClearFault,
    Disarm,
    EStop,
    Fault,
    FaultEvent,
    Goodbye,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    ImpedanceStatus,
    Message,
    Nak,
    NakReason,
    Pause,
    Resume,
    Shape,
    Start,
    State,
    Stop,
    Telemetry,
)

N = 4
LATCHED = (State.FAULT, State.ESTOP)
RISE_WINDOW_TICKS = 100  # issue 10: any window of 100 ms or more
RERAMP_RATES = st.sampled_from([0, 50_000, 1_000_000, 2_000_000, 50_000_000, 0xFFFFFFFF])

COVERAGE: dict[str, list[int]] = {}
"""Machine name -> [rule steps, steps with live output], over every run in this process."""


class LiveOutputCoverage:
    """Counts the rule steps that ran with live output (some channel delivering current at the
    step's start, at any tick in it, or at its end) and labels each example with hypothesis.event()
    (see ``pytest --hypothesis-show-statistics``): events count examples, so the label carries the
    example's share of live steps, in 10 % buckets."""

    device: Device

    def start_counting(self) -> None:
        self.steps = self.live_steps = 0
        self.live_in_step = False
        self.skip_step = True  # the invariant check right after @initialize ends no rule step

    def end_step(self) -> None:
        live_now = self.device.output_stage.any_output
        if self.skip_step:
            self.skip_step = False
        else:
            self.steps += 1
            self.live_steps += self.live_in_step or live_now
        self.live_in_step = live_now  # the next step starts with this output

    def teardown(self) -> None:
        steps = getattr(self, "steps", 0)
        if not steps:
            return
        name = type(self).__name__
        totals = COVERAGE.setdefault(name, [0, 0])
        totals[0] += steps
        totals[1] += self.live_steps
        share = 100 * self.live_steps // steps
        bucket = "100%" if share == 100 else f"{share // 10 * 10}-{share // 10 * 10 + 9}%"
        event(f"{name}: share of steps with live output", bucket)


amplitudes = st.one_of(st.sampled_from([0, 100, 500, 2000, 20_000]), st.integers(0, 0xFFFF))
frequencies = st.one_of(st.sampled_from([0, 20, 1000, 2500]), st.integers(0, 0xFFFF))
widths = st.one_of(st.sampled_from([0, 20, 200, 1000]), st.integers(0, 0xFFFF))
settings_ = st.builds(ChannelSetting, amplitudes, frequencies, widths)


class DeviceMachine(LiveOutputCoverage, RuleBasedStateMachine):
    """Drives one device with random commands; checks the safety invariants after every step."""

    @initialize(ohm=st.sampled_from([1500.0, 1500.0, 50.0, 30_000.0, 200_000.0]))
    def boot(self, ohm: float) -> None:
        self.device = Device(DeviceConfig(impedance_ohm=(1500.0, ohm)))
        self.host = ScriptedHost(self.device)
        self.latched_without_clear = False
        self.clear_pending = False
        self.next_index = 0
        self.max_step = tick_rise_max(self.device)
        self.start_counting()

    # --- commands ------------------------------------------------------------------------------

    @rule()
    def hello(self) -> None:
        self.host.send(Hello(protocol_version=PROTOCOL_VERSION))

    @rule()
    def heartbeat(self) -> None:
        self.host.send(Heartbeat())

    @rule()
    def goodbye(self) -> None:
        self.host.send(Goodbye())

    @rule(mask=st.integers(0, 0xFF))
    def impedance_check(self, mask: int) -> None:
        self.host.send(ImpedanceCheck(channel_mask=mask))

    @rule(mask=st.integers(0, 0xFF), shape=st.integers(0, 2))
    def arm(self, mask: int, shape: int) -> None:
        self.host.send(Arm(channel_mask=mask, shape=shape))
        self.next_index = 0

    @rule()
    def disarm(self) -> None:
        self.host.send(Disarm())

    @rule(
        chans=st.lists(settings_, min_size=1, max_size=N + 1),
        duration=st.sampled_from([0, 1, 20, 100, 250, 300]),
        jump=st.sampled_from([0, 0, 0, 1]),
        last=st.booleans(),
    )
    def block(self, chans: list[ChannelSetting], duration: int, jump: int, last: bool) -> None:
        index = self.next_index + jump
        self.host.send(
            Block(index=index, duration_ms=duration, flags=int(last), channels=tuple(chans))
        )
        self.next_index = index + 1

    @rule()
    def start(self) -> None:
        self.host.send(Start())

    @rule()
    def pause(self) -> None:
        self.host.send(Pause())

    @rule()
    def resume(self) -> None:
        self.host.send(Resume())

    @rule(ramp=st.sampled_from([0, 10, 100, 1000]))
    def stop(self, ramp: int) -> None:
        self.host.send(Stop(ramp_ms=ramp))

    @rule()
    def estop(self) -> None:
        self.host.send(EStop())

    @rule()
    def clear_fault(self) -> None:
        self.host.send(ClearFault())
        self.clear_pending = True  # processed at the next tick

    @rule(channel=st.integers(0, N + 1), gain=st.integers(0, 2500))
    def adjust(self, channel: int, gain: int) -> None:
        self.host.send(Adjust(channel=channel, gain_permille=gain))

    @rule(data=st.binary(min_size=1, max_size=64))
    def garbage(self, data: bytes) -> None:
        self.host.send_raw(data)

    @precondition(lambda self: hasattr(self, "device"))
    @rule(amp=st.sampled_from([500, 5000, 20_000]), mask=st.sampled_from([0b01, 0b11]))
    def valid_session(self, amp: int, mask: int) -> None:
        """The well-formed path into RUNNING, so that random steps start from live output too."""
        h = self.host
        h.send(Hello(protocol_version=PROTOCOL_VERSION))
        h.send(ImpedanceCheck(channel_mask=mask))
        self.advance(60)
        h.send(Arm(channel_mask=mask, shape=0))
        self.next_index = 0
        on, off = ChannelSetting(amp, 1000, 200), ChannelSetting(0, 0, 0)
        chans = tuple(on if mask >> i & 1 else off for i in range(N))
        for _ in range(10):
            self.block(list(chans), 20, 0, False)
        h.send(Start())
        self.advance(30)

    @rule(kind=st.sampled_from(["electrode_open", "electrode_short", "overcurrent", "underrun"]))
    def inject(self, kind: str) -> None:
        self.device.inject(kind, 1)

    @precondition(lambda self: hasattr(self, "device"))
    @rule(ticks=st.integers(1, 120))
    def advance(self, ticks: int) -> None:
        """Tick one by one, checking the invariants at every tick."""
        stage = self.device.output_stage
        for _ in range(ticks):
            before = [c.delivered_ua for c in stage.channels]
            self.device.tick()
            self.host.pump(0)
            after = [c.delivered_ua for c in stage.channels]
            self.live_in_step = self.live_in_step or any(after)
            for a, b in zip(before, after, strict=True):
                assert b - a <= self.max_step, "output rose faster than the slew limit"
            if self.clear_pending:
                self.clear_pending = self.latched_without_clear = False
            self.check_output()
            self.check_latch()

    # --- invariants ----------------------------------------------------------------------------

    def check_output(self) -> None:
        dev = self.device
        for i, ch in enumerate(dev.output_stage.channels):
            assert 0 <= ch.delivered_ua <= dev.limits.max_amplitude_ua
            if ch.delivered_ua:
                assert dev.state in OUTPUT_STATES, f"output {ch.delivered_ua} uA in {dev.state}"
                assert dev.armed_mask >> i & 1, "output on a channel not armed"
                record = dev.interlock.checks.get(i + 1)
                assert record is not None and record.status is ImpedanceStatus.OK

    def check_latch(self) -> None:
        state = self.device.state
        if self.clear_pending:
            return
        if self.latched_without_clear:
            assert state in LATCHED, f"latched fault left without CLEAR_FAULT: {state.name}"
        elif state in LATCHED:
            self.latched_without_clear = True

    @invariant()
    def output_within_limits_and_only_when_allowed(self) -> None:
        if hasattr(self, "device"):
            self.check_output()
            self.check_latch()
            self.end_step()


TestDeviceMachine = DeviceMachine.TestCase
TestDeviceMachine.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip


# --- live output: a machine that spends its steps in running sessions ----------------------------

LIVE_STATES = (State.RUNNING, State.STOPPING, State.PAUSED)
BLOCK_REFUSED_FOR_STATE = (NakReason.BAD_STATE, NakReason.FAULT_LATCHED)
OOL_KINDS = (
    "amplitude", "amplitude_max_u16", "amplitude_step", "frequency_low", "frequency_high",
    "width_low", "width_high", "duration_zero", "duration_long", "unarmed", "duty", "scaled",
)  # fmt: skip
FAULT_KINDS = (
    "electrode_open", "electrode_short", "overcurrent", "underrun", "reset", "impedance", "drift",
)  # fmt: skip


@dataclass(slots=True)
class Sent:
    """A frame sent since the last tick: what it was, and whether it can have been lost (sent
    right after garbage that did not end with a frame delimiter, so the decoder merged the two)."""

    seq: int
    msg: Message
    kind: str  # "valid", "ool", "bad_channels", "wrong_index", "duplicate", "" (not a block)
    reliable: bool


class LiveSessionMachine(LiveOutputCoverage, RuleBasedStateMachine):
    """Starts in RUNNING with output on; its rules are what happens during a session (streaming,
    ADJUST, PAUSE/RESUME, STOP, ESTOP, limit violations, injected faults, garbage, time). It acts as
    the host: it mirrors every answer (accepted blocks and gains) and checks, at every tick, the
    invariants of DeviceMachine plus those of live output."""

    @initialize(
        ohm=st.sampled_from([1500.0, 1500.0, 3500.0]),
        mask=st.sampled_from([0b0001, 0b0011, 0b0101, 0b1111]),
        shape=st.sampled_from(list(Shape)),
        amp=st.sampled_from([500, 2000, 10_000, 20_000]),
        freq=st.sampled_from([20, 1000, 2500]),
        width=st.sampled_from([20, 200, 400]),
    )
    def boot_into_running(
        self, ohm: float, mask: int, shape: int, amp: int, freq: int, width: int
    ) -> None:
        # 3500 ohm: above 17 mA more than the 60 V compliance (rarely reached: 1.7 s of slew;
        # COMPLIANCE comes mostly from the 90 kohm injection)
        self.device = Device(DeviceConfig(impedance_ohm=(1500.0, ohm)))
        self.host = ScriptedHost(self.device)
        self.max_step = tick_rise_max(self.device)
        self.window: deque[list[int]] = deque(maxlen=RISE_WINDOW_TICKS + 1)
        self.batch: list[Sent] = []
        self.rx_dirty = False
        self.latched = False
        # an accepted STOP: (delivered when processed, end tick, ramp ticks, block index playing)
        self.stopping: tuple[list[int], int, int, int] | None = None
        self.stopping_ticks = 0
        self.feed, self.keepalive = True, True
        self.broken: dict[int, set[str]] = {}  # channel -> faults injected since the last tick
        self.start_counting()
        self.reset_host_model()
        self.send(Hello(protocol_version=PROTOCOL_VERSION))
        self.tick()
        self.start_session(mask, shape, amp, freq, width)

    # --- the host side ---------------------------------------------------------------------------

    def reset_host_model(self) -> None:
        """What the device holds after ARM (or a reset): no blocks, index 0, unity gains."""
        self.gains = [GAIN_UNITY] * N
        self.accepted: dict[int, Block] = {}
        self.last_acked: int | None = None
        self.next_index = 0
        self.ended = False  # a LAST block was accepted: nothing more to stream

    def send(self, msg: Message, kind: str = "") -> int:
        seq = self.host.send(msg)
        self.batch.append(Sent(seq, msg, kind, reliable=not self.rx_dirty))
        self.rx_dirty = False  # the frame's delimiter ends whatever the decoder held
        return seq

    def gain_cap(self, channel: int) -> int:
        """The largest gain a block sent now may meet on this channel (pending ADJUSTs included)."""
        gains = [self.gains[channel]]
        for s in self.batch:
            if (
                isinstance(s.msg, Adjust)
                and s.msg.channel in (0, channel + 1)
                and s.msg.gain_permille <= self.device.limits.max_gain_permille  # else refused
            ):
                gains.append(s.msg.gain_permille)
        return max(gains)

    def valid_amplitude(self, amp: int) -> int:
        """amp, lowered so that amp x gain stays within the hardware maximum on every channel."""
        lim = self.device.limits
        for i in range(N):
            gain = self.gain_cap(i)
            if self.mask >> i & 1 and gain:
                amp = min(amp, lim.max_amplitude_ua * GAIN_UNITY // gain)
        return amp - amp % lim.amplitude_step_ua

    def send_block(self, amp: int, duration: int, last: bool = False) -> None:
        block = uniform_block(
            self.next_index, N, self.valid_amplitude(amp), self.freq, self.width, duration,
            BLOCK_FLAG_LAST if last else 0, self.mask,
        )  # fmt: skip
        self.send(block, "valid")
        self.next_index += 1

    def start_session(self, mask: int, shape: int, amp: int, freq: int, width: int) -> None:
        """The well-formed path into RUNNING, every tick checked: IMPEDANCE_CHECK, ARM, blocks,
        START, then ticks until the output is on."""
        self.mask, self.shape, self.amp, self.freq, self.width = mask, shape, amp, freq, width
        self.send(ImpedanceCheck(channel_mask=mask))
        self.tick()
        while self.device.impedance_due is not None:
            self.tick()
        arm = self.send(Arm(channel_mask=mask, shape=shape))
        answers = self.tick()
        assert isinstance(answers.get(arm), Ack), f"valid ARM refused: {answers.get(arm)}"
        for _ in range(10):
            self.send_block(amp, 20)
        start = self.send(Start())
        answers = self.tick()
        assert isinstance(answers.get(start), Ack), f"valid START refused: {answers.get(start)}"
        for _ in range(5):
            if self.device.output_stage.any_output:
                break
            self.tick()
        assert self.device.output_stage.any_output, "RUNNING without output after START"

    def feed_the_device(self, msgs: list[Message]) -> None:
        """What a streaming host does between commands: keep the FIFO topped up from TELEMETRY
        (so it does not simply underrun) and the watchdog fed."""
        dev = self.device
        if self.feed and not self.ended:
            for m in msgs:
                if isinstance(m, Telemetry) and m.state in (State.RUNNING, State.PAUSED):
                    for _ in range(max(0, 200 - m.fifo_ms) // 20):
                        self.send_block(self.amp, 20)
        if self.keepalive and dev.tick_count - self.host.last_send_tick >= 50 * dev.ticks_per_ms:
            self.send(Heartbeat())

    # --- one tick, checked ------------------------------------------------------------------------

    def tick(self) -> dict[int, Ack | Nak]:
        """One device tick, then every invariant; returns the answers (by sequence number)."""
        dev = self.device
        stage = dev.output_stage
        lim = dev.limits
        before = [c.delivered_ua for c in stage.channels]
        targets = [c.target_ua for c in stage.channels]
        state0 = dev.state
        block = dev.fifo.current
        bound = [
            lim.scaled(block.channels[i].amplitude_ua, dev.gains[i])
            if block is not None and i < len(block.channels) else 0
            for i in range(N)
        ]  # fmt: skip
        batch, self.batch = self.batch, []

        dev.tick()
        msgs = self.host.pump(0)
        now = dev.tick_count
        state = dev.state
        after = [c.delivered_ua for c in stage.channels]
        self.live_in_step = self.live_in_step or any(after)

        # the invariants of DeviceMachine
        for i, (a, b) in enumerate(zip(before, after, strict=True)):
            assert b - a <= self.max_step, f"ch{i + 1}: {a} -> {b} uA, faster than the slew limit"
        check_output_allowed(dev)
        # over any 100 ms: at most the slew ceiling (the ramp-rate-max policy) x 100 ms + one
        # DAC step, whatever the state sequence (START, RESUME, louder blocks, ADJUST)
        self.window.append(after)
        if len(self.window) == self.window.maxlen:
            allowed = lim.max_slew_ua_per_ms * RISE_WINDOW_TICKS * dev.tick_us // 1000
            for i, (a, b) in enumerate(zip(self.window[0], after, strict=True)):
                assert b - a <= allowed + lim.amplitude_step_ua, (
                    f"ch{i + 1}: rose {b - a} uA in {RISE_WINDOW_TICKS} ticks"
                )

        # delivered <= the playing block's amplitude x gain / 1000, and <= the hardware maximum
        for i, b in enumerate(after):
            assert b <= min(bound[i], lim.max_amplitude_ua), (
                f"ch{i + 1}: {b} uA above block x gain ({bound[i]} uA)"
            )

        # every frame that reached the device is answered exactly once, in the tick that read it
        answers: dict[int, Ack | Nak] = {}
        for m in msgs:
            if isinstance(m, Ack | Nak):
                assert m.ack_seq not in answers, f"seq {m.ack_seq} answered twice"
                answers[m.ack_seq] = m
        cleared = estop = False
        for s in batch:
            answer = answers.get(s.seq)
            if s.reliable and not isinstance(s.msg, Hello):
                assert answer is not None, f"{type(s.msg).__name__} (seq {s.seq}) not answered"
            self.mirror(s, answer, after, now)
            if isinstance(s.msg, EStop) and s.reliable:
                estop, cleared = True, False
            if isinstance(s.msg, ClearFault) and isinstance(answer, Ack):
                cleared = True
        self.next_index = 0 if self.last_acked is None else self.last_acked + 1

        # a fault or ESTOP zeroes the output in the tick that latched it, and it stays latched
        faults = [m for m in msgs if isinstance(m, FaultEvent)]
        for f in faults:
            event(f"LiveSessionMachine: latched {Fault(f.fault).name}")
        if faults or estop:
            assert not any(after), f"output {after} uA in the tick that latched {faults or 'ESTOP'}"
            if not cleared:
                assert state in LATCHED, f"fault reported but the device is {state.name}"
        if estop and not cleared:
            assert state is State.ESTOP, f"ESTOP processed but the device is {state.name}"
        if self.latched and not cleared:
            assert state in LATCHED, f"latched fault left without CLEAR_FAULT: {state.name}"
        self.latched = state in LATCHED

        # an electrode that misbehaves while it delivers current is caught in the next tick
        for i in [i for i, kinds in self.broken.items() if kinds]:
            if state0 is State.RUNNING and before[i] and targets[i]:
                assert state in LATCHED, f"ch{i + 1} faulty and delivering, device {state.name}"
        self.broken = {}

        # STOPPING: output never rises, ramps linearly to zero, and lasts at most ramp_ms
        if state0 is State.STOPPING:
            assert self.stopping is not None, "STOPPING without an accepted STOP"
            start, end, ramp, _ = self.stopping
            for i, (a, b) in enumerate(zip(before, after, strict=True)):
                envelope = start[i] * max(0, end - now) // max(1, ramp)
                assert b <= envelope, (
                    f"ch{i + 1}: {b} uA above the linear STOP ramp from {start[i]}"
                )
                assert b <= a, f"ch{i + 1} rose {a} -> {b} uA while STOPPING"
        if state is State.STOPPING:
            assert self.stopping is not None, "STOPPING without an accepted STOP"
            self.stopping_ticks += 1
            assert self.stopping_ticks <= max(1, self.stopping[2]), "STOPPING longer than its ramp"
        else:
            self.stopping, self.stopping_ticks = None, 0
        if state is State.PAUSED:
            assert not any(after), "output while PAUSED"

        # the device plays what the host sent and ACKed, at the gains the host set and saw ACKed
        if dev.fifo.current is not None:
            cur = dev.fifo.current
            mine = self.accepted.get(cur.index)
            assert mine is not None, f"playing block {cur.index}, never accepted"
            assert (cur.duration_ms, cur.channels) == (mine.duration_ms, mine.channels)
        assert dev.gains == self.gains, f"device gains {dev.gains}, host saw {self.gains}"

        self.feed_the_device(msgs)
        return answers

    def mirror(self, s: Sent, answer: Ack | Nak | None, after: list[int], now: int) -> None:
        """Update the host's model from one answer, and check what a refusal may be."""
        msg = s.msg
        if isinstance(msg, Block):
            if s.kind in ("ool", "bad_channels", "wrong_index"):
                assert not isinstance(answer, Ack), f"{s.kind} block {msg} accepted"
            if s.kind == "ool" and isinstance(answer, Nak):
                assert answer.reason in (NakReason.OUT_OF_LIMITS, *BLOCK_REFUSED_FOR_STATE)
            if s.kind == "bad_channels" and isinstance(answer, Nak):
                assert answer.reason in (NakReason.BAD_CHANNEL, *BLOCK_REFUSED_FOR_STATE)
            if s.kind == "wrong_index" and isinstance(answer, Nak):
                assert answer.reason in (NakReason.BLOCK_SEQUENCE, *BLOCK_REFUSED_FOR_STATE)
            if s.kind == "valid" and isinstance(answer, Nak):
                assert answer.reason is not NakReason.OUT_OF_LIMITS, f"valid {msg} refused"
            if s.kind == "duplicate":  # ACKed again (its first ACK may have been lost), not queued
                assert (
                    isinstance(answer, Ack)
                    or answer is None
                    or (answer.reason in BLOCK_REFUSED_FOR_STATE)
                ), f"repeated block {msg.index}: {answer}"
                return
            if isinstance(answer, Ack):
                self.accepted[msg.index] = msg
                self.last_acked = msg.index
                self.ended = self.ended or bool(msg.flags & BLOCK_FLAG_LAST)
        elif isinstance(answer, Ack):
            if isinstance(msg, Arm):
                self.reset_host_model()
            elif isinstance(msg, Adjust):
                for i in range(N) if msg.channel == 0 else [msg.channel - 1]:
                    self.gains[i] = msg.gain_permille
            elif isinstance(msg, Pause):
                assert not any(after), f"output {after} uA in the tick that processed PAUSE"
            elif isinstance(msg, Stop):
                ticks = msg.ramp_ms * self.device.ticks_per_ms
                cur = self.device.fifo.current
                if self.device.state is State.STOPPING and cur is not None:  # not from PAUSED
                    self.stopping = (list(after), now + ticks, ticks, cur.index)
        if isinstance(msg, Adjust) and msg.gain_permille > self.device.limits.max_gain_permille:
            assert not isinstance(answer, Ack), f"gain {msg.gain_permille} accepted"

    # --- rules: what happens during a session -----------------------------------------------------

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(
        blocks=st.lists(
            st.tuples(st.sampled_from([0, 10, 500, 2000, 10_000, 20_000]),
                      st.sampled_from([1, 5, 20, 50])),
            min_size=1, max_size=12,
        ),
        last=st.sampled_from([False] * 7 + [True]),
    )  # fmt: skip
    def stream(self, blocks: list[tuple[int, int]], last: bool) -> None:
        """Valid blocks (louder, softer, off, short, long); FIFO_FULL when too many is fine."""
        for k, (amp, duration) in enumerate(blocks):
            self.send_block(amp, duration, last and k == len(blocks) - 1)

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(kind=st.sampled_from(OOL_KINDS), channel=st.integers(0, N - 1))
    def out_of_limits_block(self, kind: str, channel: int) -> None:
        """A block with one value outside the hardware limits: NAK and FAULT(LIMIT_VIOLATION)."""
        lim = self.device.limits
        armed = [i for i in range(N) if self.mask >> i & 1]
        unarmed = [i for i in range(N) if not self.mask >> i & 1]
        ch = armed[channel % len(armed)]
        amp, freq, width, duration = 1000, self.freq, self.width, 20
        if kind == "unarmed" and unarmed:
            ch = unarmed[channel % len(unarmed)]
        elif kind == "duty" and self.shape == Shape.BIPHASIC_ASYMMETRIC:
            freq, width = lim.max_frequency_dhz, lim.max_pulse_width_us
        elif kind == "scaled" and self.gain_cap(ch) > GAIN_UNITY:
            amp = lim.max_amplitude_ua
        else:
            amp, freq, width, duration = {
                "amplitude_max_u16": (0xFFFF, freq, width, duration),
                "amplitude_step": (1005, freq, width, duration),
                "frequency_low": (amp, lim.min_frequency_dhz - 1, width, duration),
                "frequency_high": (amp, lim.max_frequency_dhz + 1, width, duration),
                "width_low": (amp, freq, lim.min_pulse_width_us - 1, duration),
                "width_high": (amp, freq, lim.max_pulse_width_us + 1, duration),
                "duration_zero": (amp, freq, width, 0),
                "duration_long": (amp, freq, width, self.device.config.max_lookahead_ms + 1),
            }.get(kind, (lim.max_amplitude_ua + lim.amplitude_step_ua, freq, width, duration))
        block = uniform_block(self.next_index, N, amp, freq, width, duration, 0, 1 << ch)
        self.send(block, "ool")

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(offset=st.sampled_from([-1, 1, 2, 1000]))
    def wrong_index_block(self, offset: int) -> None:
        """A valid block whose index is not the next expected one: NAK(BLOCK_SEQUENCE). Blocks
        still in flight may be refused (FIFO_FULL), so the device expects an index between
        last_acked + 1 and next_index: the wrong one is outside that range. An index below it
        repeats an accepted block (a retransmission): ACKed again, never queued again."""
        kind = "wrong_index"
        if offset < 0 and self.last_acked is not None:
            index, kind = max(0, self.last_acked + 1 + offset), "duplicate"
        else:
            index = self.next_index + abs(offset)
        self.send(uniform_block(index, N, 0, self.freq, self.width, 20, 0, self.mask), kind)

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule()
    def too_many_channels(self) -> None:
        on = ChannelSetting(0, self.freq, self.width)
        self.send(Block(index=self.next_index, duration_ms=20, channels=(on,) * (N + 1)),
                  "bad_channels")  # fmt: skip

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(
        channel=st.integers(0, N),
        gain=st.one_of(st.sampled_from([0, 1, 500, 999, 1000, 1001, 1500, 2000, 2001, 0xFFFF]),
                       st.integers(0, 2500)),
    )  # fmt: skip
    def adjust(self, channel: int, gain: int) -> None:
        """Live gain, up to and beyond the hardware maximum (then NAK and a latched fault)."""
        self.send(Adjust(channel=channel, gain_permille=gain))

    @precondition(lambda self: self.device.state is State.RUNNING)
    @rule(hold=st.one_of(st.none(), st.integers(1, 40)), rate=RERAMP_RATES)
    def pause(self, hold: int | None, rate: int) -> None:
        """PAUSE; with hold, the operator resumes after that many ticks (streaming meanwhile)."""
        self.send(Pause())
        if hold is not None:
            for _ in range(hold):
                self.tick()
            if self.device.state is State.PAUSED:
                self.send(Resume(ramp_na_per_s=rate))

    @precondition(lambda self: self.device.state is State.PAUSED)
    @rule(rate=RERAMP_RATES)
    def resume(self, rate: int) -> None:
        self.send(Resume(ramp_na_per_s=rate))

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(ramp=st.one_of(st.sampled_from([0, 1, 10, 100, 1000]), st.integers(0, 0xFFFF)))
    def stop(self, ramp: int) -> None:
        self.send(Stop(ramp_ms=ramp))

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule()
    def estop(self) -> None:
        self.send(EStop())

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(kind=st.sampled_from(FAULT_KINDS), channel=st.integers(1, N))
    def inject(self, kind: str, channel: int) -> None:
        """A fault now. 90 kohm: COMPLIANCE above 667 uA; drift: 5 kohm/s up to COMPLIANCE/OPEN."""
        value = 90_000.0 if kind == "impedance" else None
        self.device.inject(kind, channel, value)
        if kind == "reset":  # the device lost everything, unread bytes too: FAULT(DEVICE_RESET)
            self.reset_host_model()
            for s in self.batch:
                s.reliable = False
        else:  # open/short/overcurrent: caught at the next tick if the channel delivers
            kinds = self.broken.setdefault(channel - 1, set())
            if kind in ("impedance", "drift"):  # a new impedance replaces an open or short
                kinds.discard("electrode_open")
                kinds.discard("electrode_short")
            elif kind != "underrun":
                kinds.add(kind)

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(data=st.binary(min_size=1, max_size=64))
    def garbage(self, data: bytes) -> None:
        """Line noise; without a trailing delimiter it swallows the next frame (not answered)."""
        self.host.send_raw(data)
        self.rx_dirty = not data.endswith(b"\0")

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(
        ticks=st.integers(1, 80),
        mode=st.sampled_from(["stream"] * 6 + ["heartbeat_only", "silent"]),
    )
    def advance(self, ticks: int, mode: str) -> None:
        """Time passes, tick by tick: the host streams (or only sends heartbeats, or nothing)."""
        self.feed, self.keepalive = mode == "stream", mode != "silent"
        try:
            for _ in range(ticks):
                self.tick()
        finally:
            self.feed = self.keepalive = True

    @precondition(lambda self: self.device.state in LIVE_STATES)
    @rule(ticks=st.integers(150, 260))
    def host_goes_silent(self, ticks: int) -> None:
        """The host stops sending (crash, cable): COMMS_LOSS after watchdog_ms, or UNDERRUN."""
        self.feed = self.keepalive = False
        try:
            for _ in range(ticks):
                self.tick()
        finally:
            self.feed = self.keepalive = True

    @precondition(lambda self: self.device.state not in LIVE_STATES)
    @rule(
        mask=st.sampled_from([0b0001, 0b0011, 0b0101, 0b1111]),
        shape=st.sampled_from(list(Shape)),
        amp=st.sampled_from([500, 2000, 10_000, 20_000]),
        linger=st.sampled_from([0, 0, 1, 30, 250]),
    )
    def new_session(self, mask: int, shape: int, amp: int, linger: int) -> None:
        """The only rule once the session is over: linger (a latched fault stays latched, the
        output stays zero), then after a fault CLEAR_FAULT and new electrodes; then (also after
        STOP or the LAST block) a fresh valid session up to live output."""
        dev = self.device
        for _ in range(linger):
            self.tick()
        if self.rx_dirty:  # a new host resynchronises the link with a frame delimiter first
            self.host.send_raw(b"\0")
            self.rx_dirty = False
        self.send(Hello(protocol_version=PROTOCOL_VERSION))  # silence in IDLE ended the session
        self.tick()
        if dev.state in LATCHED:
            clear = self.send(ClearFault())
            answers = self.tick()
            assert isinstance(answers.get(clear), Ack), f"CLEAR_FAULT refused: {answers}"
        if dev.state is State.ARMED:
            self.send(Disarm())
            self.tick()
        for ch in range(1, N + 1):
            dev.inject("clear", ch)
        assert dev.state is State.IDLE, dev.state
        self.start_session(mask, shape, amp, self.freq, self.width)

    @invariant()
    def count_live_steps(self) -> None:
        if hasattr(self, "device") and hasattr(self, "steps"):
            self.end_step()


def tick_rise_max(dev: Device) -> int:
    """Largest rise in one tick: the slew ceiling earned per tick, in whole DAC steps (rounded
    up: a step is taken once it is earned)."""
    earned = dev.limits.max_slew_ua_per_ms * dev.tick_us / 1000
    step = dev.limits.amplitude_step_ua
    return max(step, -(-int(earned) // step) * step)


def check_output_allowed(dev: Device) -> None:
    """DeviceMachine.check_output for one device: within limits, only where output is allowed."""
    for i, ch in enumerate(dev.output_stage.channels):
        assert 0 <= ch.delivered_ua <= dev.limits.max_amplitude_ua
        if ch.delivered_ua:
            assert dev.state in OUTPUT_STATES, f"output {ch.delivered_ua} uA in {dev.state}"
            assert dev.armed_mask >> i & 1, "output on a channel not armed"
            record = dev.interlock.checks.get(i + 1)
            assert record is not None and record.status is ImpedanceStatus.OK


TestLiveSessionMachine = LiveSessionMachine.TestCase
TestLiveSessionMachine.settings = settings(
    max_examples=250, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip


def test_stop_ramp_never_rises() -> None:
    """STOP ramps the output "from its present value to zero" (PROTOCOL.md): it never rises, even
    when the blocks that keep playing during the ramp get louder. Found by LiveSessionMachine (a
    quieter block during the ramp used to let the output slew back up to the ramp line)."""
    dev = Device()
    host = ScriptedHost(dev)
    host.open_session(0b0001)
    for i, (amp, ms) in enumerate([(200, 40), (0, 10), (200, 200)]):  # loud, off, loud again
        assert isinstance(host.command(uniform_block(i, N, amp, duration_ms=ms, mask=1)), Ack)
    assert isinstance(host.command(Start()), Ack)
    ch = dev.output_stage.channels[0]
    while ch.delivered_ua < 200:
        dev.tick()
    host.send(Stop(ramp_ms=1000))  # processed at the next tick, in block 0
    dev.tick()
    assert dev.state is State.STOPPING
    rises = []
    while dev.state is State.STOPPING:
        before = ch.delivered_ua
        dev.tick()
        if ch.delivered_ua > before:
            rises.append((dev.tick_count, before, ch.delivered_ua))
    assert not rises, f"output rose while STOPPING (tick, from uA, to uA): {rises[:3]}..."
