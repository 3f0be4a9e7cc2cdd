"""Stateful property test of the device: random command sequences and garbage never break safety."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from firmware_sim import Device, DeviceConfig
from firmware_sim.interlock import OUTPUT_STATES
from firmware_sim.scripted import ScriptedHost
from stimctl.protocol import (
    PROTOCOL_VERSION,
    Adjust,
    Arm,
    Block,
    ChannelSetting,
    ClearFault,
    Disarm,
    EStop,
    Goodbye,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    ImpedanceStatus,
    Pause,
    Resume,
    Start,
    State,
    Stop,
)

N = 4
LATCHED = (State.FAULT, State.ESTOP)

amplitudes = st.one_of(st.sampled_from([0, 100, 500, 2000, 20_000]), st.integers(0, 0xFFFF))
frequencies = st.one_of(st.sampled_from([0, 20, 1000, 2500]), st.integers(0, 0xFFFF))
widths = st.one_of(st.sampled_from([0, 20, 200, 1000]), st.integers(0, 0xFFFF))
settings_ = st.builds(ChannelSetting, amplitudes, frequencies, widths)


class DeviceMachine(RuleBasedStateMachine):
    """Drives one device with random commands; checks the safety invariants after every step."""

    @initialize(ohm=st.sampled_from([1500.0, 1500.0, 50.0, 30_000.0, 200_000.0]))
    def boot(self, ohm: float) -> None:
        self.device = Device(DeviceConfig(impedance_ohm=(1500.0, ohm)))
        self.host = ScriptedHost(self.device)
        self.latched_without_clear = False
        self.clear_pending = False
        self.next_index = 0
        self.max_step = self.device.limits.max_slew_ua_per_ms

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


TestDeviceMachine = DeviceMachine.TestCase
TestDeviceMachine.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip
