"""Fuzz the framing decoder with random and mutated frames; count exceptions and false accepts.

A pool of random, valid messages is encoded once. The fuzzer then writes a byte stream of
``n`` pieces: unmodified pool frames and frames damaged by bit flips, byte insertion/deletion,
truncation, segment duplication, splicing of two frames, extra delimiters, plus runs of random
garbage (some longer than ``MAX_ENCODED`` without a delimiter). The stream is fed to one
``FrameDecoder`` in random-sized chunks, and the fuzzer checks that:

* no exception escapes ``feed()``;
* every returned ``Message`` re-encodes (with its seq) to a frame of the pool, i.e. nothing is
  ever accepted from a corrupt frame ("false accepts" must be 0);
* every unmodified frame that starts right after a delimiter comes out, in order ("missed");
* the decoder never holds more than ``MAX_ENCODED`` bytes.

Usage: ``python -m hil.benchmarks.fuzz [-n N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from collections import Counter, deque
from typing import Any

from stimctl.protocol import CATALOGUE, MAX_ENCODED, MAX_PAYLOAD, FrameDecoder, Message, encode
from stimctl.protocol.framing import Invalid
from stimctl.protocol.messages import Item

_MAX_UINT = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF}
_SERIAL_ALPHABET = "".join(chr(c) for c in range(1, 128))

MUTATIONS: tuple[tuple[str, int], ...] = (
    # (kind, weight)
    ("clean", 30),
    ("bit_flip", 15),
    ("insert", 8),
    ("delete", 8),
    ("truncate", 8),
    ("duplicate", 6),
    ("splice", 8),
    ("garbage", 8),
    ("delimiters", 9),
)


def _random_value(rng: random.Random, code: str) -> Any:
    if code.endswith("s"):
        size = int(code[:-1])
        return "".join(rng.choices(_SERIAL_ALPHABET, k=rng.randint(0, size)))
    top = _MAX_UINT[code]
    # Bias towards the edges of the range, where packing bugs live.
    r = rng.random()
    if r < 0.1:
        return 0
    if r < 0.2:
        return top
    return rng.randint(0, top)


def _random_item(rng: random.Random, item_cls: type[Item]) -> Item:
    return item_cls(*(_random_value(rng, code) for _, code in item_cls.FIELDS))


def max_items(cls: type[Message]) -> int:
    """The largest item count that keeps the payload within MAX_PAYLOAD (0 without ITEM)."""
    if cls.ITEM is None:
        return 0
    fixed = struct.calcsize("<" + "".join(code for _, code in cls.FIELDS))
    item = struct.calcsize("<" + "".join(code for _, code in cls.ITEM.FIELDS))
    return min(255, (MAX_PAYLOAD - fixed - 1) // item)


def random_message(rng: random.Random, cls: type[Message] | None = None) -> Message:
    """A random, valid message (every field within its wire range)."""
    if cls is None:
        cls = rng.choice(list(CATALOGUE.values()))
    kwargs: dict[str, Any] = {name: _random_value(rng, code) for name, code in cls.FIELDS}
    if cls.ITEM is not None:
        count = rng.randint(0, max_items(cls))
        kwargs["channels"] = tuple(_random_item(rng, cls.ITEM) for _ in range(count))
    return cls(seq=rng.randint(0, 0xFFFF), **kwargs)


def _random_bytes(rng: random.Random, k: int, nonzero: bool = False) -> bytes:
    if nonzero:
        return bytes(rng.randint(1, 255) for _ in range(k))
    return rng.randbytes(k)


def mutate(rng: random.Random, kind: str, frame: bytes, other: bytes) -> bytes:
    """``frame`` (delimiter included) damaged by mutation ``kind``; ``other`` for splices."""
    body = frame[:-1]
    if kind == "clean":
        return frame
    if kind == "bit_flip":
        b = bytearray(frame)
        for bit in rng.sample(range(len(b) * 8), rng.choice((1, 1, 1, 2, 3))):
            b[bit >> 3] ^= 1 << (bit & 7)
        return bytes(b)
    if kind == "insert":
        b = bytearray(frame)
        for _ in range(rng.randint(1, 3)):
            b.insert(rng.randint(0, len(b) - 1), rng.randint(0, 255))
        return bytes(b)
    if kind == "delete":
        b = bytearray(frame)
        for _ in range(min(rng.randint(1, 3), len(b) - 1)):
            del b[rng.randrange(len(b))]
        return bytes(b)
    if kind == "truncate":
        cut = rng.randint(1, len(body))
        # With its delimiter kept (the tail was lost) or without (the next frame runs into it).
        return body[:cut] + (b"\x00" if rng.random() < 0.5 else b"")
    if kind == "duplicate":
        i = rng.randrange(len(body))
        j = rng.randint(i + 1, len(body))
        return body[:j] + body[i:j] + body[j:] + b"\x00"
    if kind == "splice":
        head = body[: rng.randint(1, len(body))]
        tail = other[rng.randrange(len(other) - 1) : -1]
        return head + tail + b"\x00"
    if kind == "garbage":
        length = rng.choice((rng.randint(1, 64), rng.randint(1, 3 * MAX_ENCODED)))
        junk = _random_bytes(rng, length, nonzero=rng.random() < 0.5)
        return junk + (b"\x00" if rng.random() < 0.5 else b"")
    if kind == "delimiters":
        if rng.random() < 0.3:
            return b"\x00" * rng.randint(1, 4)
        b = bytearray(frame)
        for _ in range(rng.randint(1, 3)):
            b.insert(rng.randint(0, len(b)), 0)
        return bytes(b)
    raise ValueError(f"unknown mutation {kind!r}")


def run(n: int = 1_000_000, seed: int = 0, pool_size: int = 4096) -> dict[str, Any]:
    """Fuzz ``n`` pieces (frames, mutated frames, garbage runs); return the figures."""
    rng = random.Random(seed)
    pool = [encode(random_message(rng)) for _ in range(min(pool_size, max(n, 1)))]
    valid = set(pool)
    kinds = [k for k, _ in MUTATIONS]
    weights = [w for _, w in MUTATIONS]

    decoder = FrameDecoder()
    expected: deque[bytes] = deque()  # clean frames (after a delimiter) not yet seen decoded
    kind_counts: Counter[str] = Counter()
    exceptions = 0
    first_exception = ""
    false_accepts: list[str] = []
    reencode_errors = 0
    messages = invalid = extra = 0
    max_buffer = 0
    decode_seconds = 0.0
    prev_byte = 0  # the stream starts as if after a delimiter

    def check(items: list[Message | Invalid]) -> None:
        nonlocal messages, invalid, extra, reencode_errors
        for item in items:
            if isinstance(item, Invalid):
                invalid += 1
                continue
            if not isinstance(item, Message):
                false_accepts.append(repr(item)[:200])
                continue
            messages += 1
            try:
                wire = encode(item)
            except Exception:
                reencode_errors += 1
                false_accepts.append(repr(item)[:200])
                continue
            if wire not in valid:
                false_accepts.append(repr(item)[:200])
            elif expected and wire == expected[0]:
                expected.popleft()
            else:
                extra += 1  # e.g. a frame that a mutation left intact, or a repeated one

    def feed(data: bytes) -> None:
        nonlocal exceptions, first_exception, max_buffer, decode_seconds
        t0 = time.perf_counter()
        try:
            items = decoder.feed(data)
        except Exception as exc:
            exceptions += 1
            if not first_exception:
                first_exception = f"{type(exc).__name__}: {exc}"
            items = []
        decode_seconds += time.perf_counter() - t0
        max_buffer = max(max_buffer, len(decoder._buf))
        check(items)

    t_start = time.perf_counter()
    done = 0
    while done < n:
        batch = min(512, n - done)
        stream = bytearray()
        for _ in range(batch):
            kind = rng.choices(kinds, weights)[0]
            frame = rng.choice(pool)
            piece = mutate(rng, kind, frame, rng.choice(pool))
            kind_counts[kind] += 1
            if kind == "clean" and prev_byte == 0:
                expected.append(frame)
            stream += piece
            prev_byte = piece[-1]
        done += batch
        pos = 0
        while pos < len(stream):
            step = rng.choice((1, rng.randint(1, 64), rng.randint(1, 1024)))
            feed(bytes(stream[pos : pos + step]))
            pos += step
    feed(b"\x00")  # flush whatever the last piece left in the decoder
    elapsed = time.perf_counter() - t_start

    stats = decoder.stats
    return {
        "frames": n,
        "seed": seed,
        "pool": len(pool),
        "mutations": dict(sorted(kind_counts.items())),
        "bytes": stats.bytes_in,
        "exceptions": exceptions,
        "first_exception": first_exception,
        "false_accepts": len(false_accepts),
        "false_accept_examples": false_accepts[:5],
        "reencode_errors": reencode_errors,
        "missed": len(expected),
        "messages": messages,
        "extra_messages": extra,
        "invalid": invalid,
        "max_buffer": max_buffer,
        "max_encoded": MAX_ENCODED,
        "decoder": {
            "frames": stats.frames,
            "invalid": stats.invalid,
            "cobs_errors": stats.cobs_errors,
            "crc_errors": stats.crc_errors,
            "short_frames": stats.short_frames,
            "overflows": stats.overflows,
            "errors": stats.errors,
        },
        "seconds": elapsed,
        "decode_seconds": decode_seconds,
        "frames_per_s": n / elapsed if elapsed else float("inf"),
        "decode_frames_per_s": n / decode_seconds if decode_seconds else float("inf"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.benchmarks.fuzz", description=__doc__)
    parser.add_argument("-n", type=int, default=1_000_000, help="pieces to fuzz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = run(args.n, args.seed)
    print(f"frames fuzzed:    {r['frames']:,} (seed {r['seed']}, {r['bytes']:,} bytes)")
    print("mutations:        " + ", ".join(f"{k} {v:,}" for k, v in r["mutations"].items()))
    cause = f" ({r['first_exception']})" if r["first_exception"] else ""
    print(f"exceptions:       {r['exceptions']}{cause}")
    print(f"false accepts:    {r['false_accepts']}")
    for example in r["false_accept_examples"]:
        print(f"  {example}")
    print(f"missed clean:     {r['missed']}")
    print(f"messages out:     {r['messages']:,} ({r['extra_messages']:,} beyond the clean frames)")
    print(f"invalid out:      {r['invalid']}")
    print(f"max buffer:       {r['max_buffer']} bytes (MAX_ENCODED {r['max_encoded']})")
    print("decoder counters: " + ", ".join(f"{k} {v:,}" for k, v in r["decoder"].items()))
    print(
        f"time:             {r['seconds']:.1f} s total, {r['decode_seconds']:.1f} s in feed()"
        f" -> {r['frames_per_s']:,.0f} frames/s overall,"
        f" {r['decode_frames_per_s']:,.0f} frames/s decode"
    )
    ok = r["exceptions"] == 0 and r["false_accepts"] == 0 and r["missed"] == 0
    ok = ok and r["max_buffer"] <= MAX_ENCODED
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
