"""Fuzzing the frame decoder: random and mutated frames never raise and are never acted on.

The fuzz engine is ``hil.benchmarks.fuzz.run`` (the same one the benchmark prints). The default
suite runs a quick, seeded pass of 20,000 pieces; the ``slow`` pass runs 1,000,000 and is
skipped unless ``-m slow`` is given or ``STIMCTL_SLOW=1`` is set.
"""

from __future__ import annotations

import functools
import os
import random
import re
import struct
import zlib

import pytest
from cobs import cobs

from hil.benchmarks.fuzz import MUTATIONS, max_items, run
from stimctl.protocol import CATALOGUE, MAX_ENCODED, MAX_PAYLOAD, FrameDecoder, Message, encode
from stimctl.protocol.framing import Invalid

QUICK_FRAMES = 20_000
SLOW_FRAMES = 1_000_000


def _slow_enabled(config: pytest.Config) -> bool:
    if os.environ.get("STIMCTL_SLOW") == "1":
        return True
    # Reaching the test at all with "slow" in the -m expression means the expression selected it.
    return re.search(r"\bslow\b", config.getoption("markexpr") or "") is not None


@functools.cache
def _fuzz(n: int, seed: int) -> dict:
    return run(n, seed)


@pytest.fixture(
    params=[
        pytest.param((QUICK_FRAMES, 1), id="quick"),
        pytest.param(
            (SLOW_FRAMES, 0), id="slow", marks=[pytest.mark.slow, pytest.mark.timeout(900)]
        ),
    ]
)
def report(request: pytest.FixtureRequest) -> dict:
    n, seed = request.param
    if n == SLOW_FRAMES and not _slow_enabled(request.config):
        pytest.skip("slow fuzz: run with -m slow or STIMCTL_SLOW=1")
    return _fuzz(n, seed)


def test_fuzzed_stream_raises_no_exception_from_feed(report):
    assert report["exceptions"] == 0, report["first_exception"]


def test_fuzzed_stream_yields_no_message_that_was_not_encoded_unmodified(report):
    assert report["false_accepts"] == 0, report["false_accept_examples"]
    assert report["reencode_errors"] == 0


def test_fuzzed_stream_decodes_every_clean_frame_in_order(report):
    assert report["missed"] == 0


def test_fuzzed_stream_keeps_the_decoder_buffer_within_max_encoded(report):
    assert report["max_buffer"] <= MAX_ENCODED


def test_fuzzed_stream_exercises_every_mutation_and_decoder_error_path(report):
    assert set(report["mutations"]) == {kind for kind, _ in MUTATIONS}
    assert sum(report["mutations"].values()) == report["frames"]
    counters = report["decoder"]
    assert min(counters["cobs_errors"], counters["crc_errors"], counters["short_frames"]) > 0
    assert counters["overflows"] > 0
    assert counters["frames"] == report["messages"] > 0


# --- CRC-valid frames with random headers and payloads: the payload parser ------------------


def _random_crc_valid_frame(rng: random.Random) -> tuple[bytes, tuple[int, int, int]]:
    version = 1 if rng.random() < 0.9 else rng.randrange(256)
    if rng.random() < 0.8:
        cls = rng.choice(list(CATALOGUE.values()))
        type_code = cls.TYPE
        fixed = struct.calcsize("<" + "".join(code for _, code in cls.FIELDS))
        if cls.ITEM is not None and rng.random() < 0.7:
            item = struct.calcsize("<" + "".join(code for _, code in cls.ITEM.FIELDS))
            count = rng.randint(0, max_items(cls))
            stated = count if rng.random() < 0.8 else rng.randrange(256)
            payload = rng.randbytes(fixed) + bytes([stated]) + rng.randbytes(count * item)
        elif rng.random() < 0.7:
            payload = rng.randbytes(fixed)
        else:
            payload = rng.randbytes(rng.randint(0, MAX_PAYLOAD))
    else:
        type_code = rng.randrange(256)
        payload = rng.randbytes(rng.randint(0, MAX_PAYLOAD))
    if rng.random() < 0.5:  # ASCII-heavy payloads reach the text field's happy path
        payload = bytes(b & 0x7F for b in payload)
    seq = rng.randrange(1 << 16)
    body = struct.pack("<BBH", version, type_code, seq) + payload
    frame = cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"
    return frame, (version, type_code, seq)


def test_crc_valid_random_payloads_decode_canonically_or_as_invalid():
    rng = random.Random(3)
    decoder = FrameDecoder()
    accepted = 0
    for _ in range(QUICK_FRAMES):
        frame, header = _random_crc_valid_frame(rng)
        out = decoder.feed(frame)
        assert len(out) == 1, frame
        item = out[0]
        if isinstance(item, Invalid):
            assert (item.version, item.type_code, item.seq) == header
        else:
            assert isinstance(item, Message)
            assert encode(item) == frame  # a message is accepted only from its one encoding
            accepted += 1
    assert decoder.stats.errors == 0
    assert 0 < accepted < QUICK_FRAMES
