"""RuleContext keeps the sequences it builds (sites, electrodes, amplitudes, variants, the
strongest current's quantities) as the lists they are made as, without a tuple copy of each per
validation: that rests on no rule writing to them. Every rule runs over generated profiles
(every kind of finding, a narrower envelope, every patient flag) and the lists must come out
as they went in."""

from __future__ import annotations

import copy

from hil.benchmarks.profilegen import generate, parsable
from stimctl.rules.context import RuleContext
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.placement import PATIENT_FLAGS, placement_clear
from stimctl.rules.quantity_rules import unclear
from stimctl.rules.safety import ALL_RULES

#: The context's per-channel, per-electrode and per-phase sequences.
_SEQUENCES = (
    "sites",
    "channel_amplitudes",
    "electrodes",
    "amplitudes",
    "variants",
    "electrode_tops",
)


def test_no_rule_writes_to_the_sequences_of_the_context() -> None:
    default = SafetyEnvelope()
    narrow = default.narrowed(max_amplitude_ma=2.0, max_channels=2, max_ramp_rate_ma_per_s=0.5)
    profiles = parsable(generate(300, 7))
    assert len(profiles) > 100
    for profile in profiles:
        for envelope, patient in ((default, ()), (narrow, PATIENT_FLAGS)):
            ctx = RuleContext(profile, envelope, patient)
            before = {name: copy.copy(getattr(ctx, name)) for name in _SEQUENCES}
            unclear(ctx)
            placement_clear(ctx)
            for rule in ALL_RULES:
                list(rule(ctx))
            for name in _SEQUENCES:
                assert getattr(ctx, name) == before[name], name
