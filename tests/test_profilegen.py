"""The validation benchmark's profile generator: distinct, repeatable, varied, valid and not."""

from __future__ import annotations

import tomllib
from collections import Counter

from hil.benchmarks.profilegen import generate, profile_data, to_toml
from stimctl.rules.profile import ProfileError, loads_profile
from stimctl.rules.validation import validate_bytes

COUNT = 400


def test_generated_profiles_are_all_different() -> None:
    raws = [p.raw for p in generate(COUNT)]
    assert len(set(raws)) == COUNT


def test_the_same_seed_gives_the_same_profiles_and_another_seed_others() -> None:
    assert generate(50, seed=3) == generate(50, seed=3)
    assert {p.raw for p in generate(50, seed=3)}.isdisjoint(p.raw for p in generate(50, seed=4))


def test_generated_profiles_mix_clean_rule_breaking_schema_and_syntax_failures() -> None:
    kinds: Counter[str] = Counter()
    for profile in generate(COUNT):
        report = validate_bytes(profile.raw, profile.fmt)
        if report.profile is None:
            kinds["syntax" if report.violations[0].loc == "" else "schema"] += 1
        else:
            kinds["ok" if report.ok else "rules"] += 1
    assert set(kinds) == {"ok", "rules", "schema", "syntax"}
    assert kinds["ok"] >= COUNT // 4 and kinds["rules"] >= COUNT // 5


def test_generated_profiles_cover_one_to_eight_channels_every_mode_and_json() -> None:
    channels, modes, formats = set(), set(), set()
    for profile in generate(COUNT):
        formats.add(profile.fmt)
        try:
            parsed = loads_profile(profile.raw, profile.fmt)
        except ProfileError:
            continue
        channels.add(len(parsed.channels))
        modes.update(phase.mode for phase in parsed.phases)
    assert channels == set(range(1, 9))
    assert modes == {"continuous", "dense_disperse", "intermittent"}
    assert formats == {"toml", "json"}


def test_to_toml_reads_back_as_the_same_data() -> None:
    import random

    data = profile_data(random.Random(1), 0, ("alias", "shared-needle"))
    assert tomllib.loads(to_toml(data)) == data
