"""A minimal scripted host driving a Device in-process (virtual time), for tests and benchmarks.

It knows only the wire protocol, so device tests do not depend on the host they are meant to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from firmware_sim.device import Device
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Ack,
    Arm,
    Block,
    ChannelSetting,
    DeviceInfo,
    FrameDecoder,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Message,
    Nak,
    Start,
    State,
    Telemetry,
    encode,
    renumbered,
)


@dataclass(slots=True)
class ScriptedHost:
    """Sends frames to the device and collects what comes back; advances virtual time itself."""

    device: Device
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    received: list[Message] = field(default_factory=list)
    telemetry: Telemetry | None = None
    last_send_tick: int = 0
    _seq: int = 0

    def send(self, msg: Message) -> int:
        """Frame and send a message with the next host sequence number; returns that number."""
        self._seq = (self._seq + 1) % SEQ_MODULO
        frame = encode(renumbered(msg, self._seq))
        self.device.receive(frame)
        self.last_send_tick = self.device.tick_count
        return self._seq

    def send_raw(self, data: bytes) -> None:
        self.device.receive(data)

    def pump(self, ticks: int = 1) -> list[Message]:
        """Advance the device and decode everything it sent."""
        self.device.run_ticks(ticks)
        return self._collect()

    def _collect(self) -> list[Message]:
        msgs = [m for m in self.decoder.feed(self.device.read_tx()) if isinstance(m, Message)]
        for m in msgs:
            if isinstance(m, Telemetry):
                self.telemetry = m
        self.received += msgs
        return msgs

    def command(self, msg: Message, max_ticks: int = 100) -> Ack | Nak | DeviceInfo:
        """Send a command and run until its answer arrives."""
        seq = self.send(msg)
        for _ in range(max_ticks):
            for m in self.pump(1):
                if isinstance(m, Ack | Nak) and m.ack_seq == seq:
                    return m
                if isinstance(m, DeviceInfo) and isinstance(msg, Hello):
                    return m
        raise TimeoutError(f"no answer to {type(msg).__name__} within {max_ticks} ticks")

    def wait_for(self, kind: type[Message], max_ticks: int = 1000) -> Message:
        for _ in range(max_ticks):
            for m in self.pump(1):
                if isinstance(m, kind):
                    return m
        raise TimeoutError(f"no {kind.__name__} within {max_ticks} ticks")

    def open_session(self, mask: int, shape: int = 0) -> None:
        """HELLO, impedance check of mask, ARM(mask, shape); raises if any step is refused."""
        info = self.command(Hello(protocol_version=PROTOCOL_VERSION))
        assert isinstance(info, DeviceInfo), info
        assert isinstance(self.command(ImpedanceCheck(channel_mask=mask)), Ack)
        self.wait_for(ImpedanceResult)
        answer = self.command(Arm(channel_mask=mask, shape=shape))
        assert isinstance(answer, Ack), answer

    def stream(self, blocks: Iterable[Block], fill_ms: int = 240, max_ticks: int = 1 << 40) -> int:
        """Queue blocks up to fill_ms, START, then top the FIFO up from every TELEMETRY until the
        blocks run out and the device leaves RUNNING. Returns the number of blocks sent."""
        it: Iterator[Block] = iter(blocks)
        sent = queued = 0
        pending = next(it, None)
        while pending is not None and queued + pending.duration_ms <= fill_ms:
            self.send(pending)
            sent += 1
            queued += pending.duration_ms
            pending = next(it, None)
        assert isinstance(self.command(Start()), Ack)
        dev = self.device
        end = dev.tick_count + max_ticks
        while dev.tick_count < end:
            dev.run_until_output(end - dev.tick_count)
            for m in self._collect():
                if not isinstance(m, Telemetry):
                    continue
                if m.state != State.RUNNING:
                    return sent
                room = fill_ms - m.fifo_ms
                if (pending is None or pending.duration_ms > room) and (
                    dev.tick_count - self.last_send_tick >= 50 * dev.ticks_per_ms
                ):
                    self.send(Heartbeat())  # nothing to stream: keep the watchdog fed
                while pending is not None and pending.duration_ms <= room:
                    self.send(pending)
                    sent += 1
                    room -= pending.duration_ms
                    pending = next(it, None)
        return sent


def dense_disperse(
    minutes: float,
    channels: int,
    amplitude_ua: int = 500,
    pulse_width_us: int = 300,
    block_ms: int = 20,
    phase_ms: int = 3000,
) -> Iterator[Block]:
    """Han's 2/100 Hz dense-disperse: 2 Hz / 100 Hz alternating every phase_ms, LAST at end."""
    total = int(minutes * 60_000) // block_ms
    slow = tuple(ChannelSetting(amplitude_ua, 20, pulse_width_us) for _ in range(channels))
    fast = tuple(ChannelSetting(amplitude_ua, 1000, pulse_width_us) for _ in range(channels))
    for i in range(total):
        settings = slow if (i * block_ms // phase_ms) % 2 == 0 else fast
        flags = BLOCK_FLAG_LAST if i == total - 1 else 0
        yield Block(index=i, duration_ms=block_ms, flags=flags, channels=settings)


def uniform_block(
    index: int,
    channels: int,
    amplitude_ua: int = 500,
    frequency_dhz: int = 20,
    pulse_width_us: int = 200,
    duration_ms: int = 20,
    flags: int = 0,
    mask: int = 0xFF,
) -> Block:
    """A block with the same setting on every channel in mask (the others off)."""
    on = ChannelSetting(amplitude_ua, frequency_dhz, pulse_width_us)
    off = ChannelSetting(0, 0, 0)
    settings = tuple(on if mask >> i & 1 else off for i in range(channels))
    return Block(index=index, duration_ms=duration_ms, flags=flags, channels=settings)
