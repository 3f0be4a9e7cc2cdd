"""Codec throughput and frame sizes: encode/decode rate, per-frame time, bytes on the wire.

Timing is measured over batches of frames (one ``perf_counter`` pair per batch), over a mix of
the representative messages below; per-frame times are batch time / batch size. Figures are
printed, never asserted.

Usage: ``python -m hil.benchmarks.codec [--seconds S]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from stimctl.protocol import (
    Ack,
    Block,
    ChannelSetting,
    ChannelTelemetry,
    FrameDecoder,
    Heartbeat,
    Message,
    State,
    Telemetry,
    encode,
)

CHANNELS = 8
BATCH = 100


def representative_messages() -> dict[str, Message]:
    """An 8-channel Block and Telemetry, a Heartbeat and an Ack, with realistic values."""
    block = Block(
        seq=1234,
        index=4711,
        duration_ms=100,
        flags=0,
        channels=tuple(
            ChannelSetting(amplitude_ua=2500 + 250 * c, frequency_dhz=20, pulse_width_us=300)
            for c in range(CHANNELS)
        ),
    )
    telemetry = Telemetry(
        seq=40000,
        time_ms=123_456,
        state=State.RUNNING,
        fault=0,
        fault_channel=0,
        fifo_blocks=12,
        fifo_ms=1200,
        block_index=4700,
        next_block=4712,
        channels=tuple(
            ChannelTelemetry(
                set_ua=2500 + 250 * c,
                measured_ua=2490 + 250 * c,
                impedance_ohm=1800 + 50 * c,
                pulses=24_690 + c,
            )
            for c in range(CHANNELS)
        ),
    )
    return {
        "Block": block,
        "Telemetry": telemetry,
        "Heartbeat": Heartbeat(seq=77),
        "Ack": Ack(seq=78, ack_seq=1234, ack_type=Block.TYPE),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed_batches(work: Callable[[], None], seconds: float) -> tuple[int, float, list[float]]:
    """Run ``work`` (one batch of BATCH frames) for about ``seconds``; per-frame times in us."""
    per_frame_us: list[float] = []
    frames = 0
    total = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        work()
        t1 = time.perf_counter()
        per_frame_us.append((t1 - t0) / BATCH * 1e6)
        frames += BATCH
        total += t1 - t0
        if t1 >= deadline:
            return frames, total, per_frame_us


def _summary(per_frame_us: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(per_frame_us),
        "p99": _percentile(per_frame_us, 0.99),
        "max": max(per_frame_us),
    }


def _median_one(msg: Message, seconds: float) -> dict[str, float]:
    """Median per-frame encode and decode time of one message alone, in microseconds."""
    frame = encode(msg)
    decoder = FrameDecoder()

    def encode_batch() -> None:
        for _ in range(BATCH):
            encode(msg)

    def decode_batch() -> None:
        for _ in range(BATCH):
            decoder.feed(frame)

    _, _, enc_us = _timed_batches(encode_batch, seconds)
    _, _, dec_us = _timed_batches(decode_batch, seconds)
    assert decoder.stats.frames > 0 and decoder.stats.errors == 0
    return {"encode_us": statistics.median(enc_us), "decode_us": statistics.median(dec_us)}


def measure(seconds: float = 1.0) -> dict[str, Any]:
    """Encode and decode the representative messages for about ``seconds`` each."""
    messages = representative_messages()
    frame_bytes = {name: len(encode(msg)) for name, msg in messages.items()}
    mix = list(messages.values())
    batch_msgs = [mix[i % len(mix)] for i in range(BATCH)]
    batch_frames = [encode(m) for m in batch_msgs]

    def encode_batch() -> None:
        for m in batch_msgs:
            encode(m)

    decoder = FrameDecoder()

    def decode_batch() -> None:
        feed = decoder.feed
        for f in batch_frames:
            feed(f)

    encode_batch()  # warm-up
    decode_batch()
    enc_frames, enc_time, enc_us = _timed_batches(encode_batch, seconds)
    dec_frames, dec_time, dec_us = _timed_batches(decode_batch, seconds)
    per_message = {name: _median_one(msg, seconds / 4) for name, msg in messages.items()}
    assert decoder.stats.errors == 0 and decoder.stats.invalid == 0
    return {
        "encode_per_s": enc_frames / enc_time,
        "decode_per_s": dec_frames / dec_time,
        "frame_bytes": frame_bytes,
        "encode_us": _summary(enc_us),
        "decode_us": _summary(dec_us),
        "per_message_median_us": per_message,
        "batch": BATCH,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.codec", description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args(argv)
    r = measure(args.seconds)
    print(
        "frame bytes (delimiter included): "
        + ", ".join(f"{name} {size}" for name, size in r["frame_bytes"].items())
    )
    print(f"mix of {', '.join(r['frame_bytes'])}; timed in batches of {r['batch']} frames")
    for what in ("encode", "decode"):
        us = r[f"{what}_us"]
        print(
            f"{what}: {r[f'{what}_per_s']:,.0f} frames/s; per frame median {us['median']:.2f} us,"
            f" p99 {us['p99']:.2f} us, max {us['max']:.2f} us"
        )
    for name, us in r["per_message_median_us"].items():
        print(
            f"  {name:<10} median encode {us['encode_us']:.2f} us, decode {us['decode_us']:.2f} us"
        )


if __name__ == "__main__":
    main()
