"""validate_profile judges the profile it is given even when it was built without pydantic's
checks (``model_copy(update=...)``, ``model_construct``): its structure is checked again, so a
negative or non-finite figure is a ``schema`` error, not a pass."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stimctl.controller import Controller
from stimctl.host.errors import ValidationRefused
from stimctl.rules.profile import Profile, load_profile
from stimctl.rules.validation import validate_profile

SEED = Path(__file__).parent.parent / "profiles" / "seed-st36-lr3.toml"


def with_second_channel(amplitude_ma: float) -> Profile:
    """The seed plus a channel on the right leg, its amplitude set past the model's checks."""
    seed = load_profile(SEED)
    second = seed.channels[0].model_copy(
        update={"id": 2, "anode": "ST36-R", "cathode": "LR3-R", "amplitude_ma": amplitude_ma}
    )
    return seed.model_copy(update={"channels": [seed.channels[0], second]})


def test_a_negative_amplitude_slipped_past_the_model_is_refused() -> None:
    """-5 mA passed every rule (each compares 'above a limit'); compiled, it wrapped to
    60.536 mA in the uint16 block field, stopped only by the host guard and the device."""
    report = validate_profile(with_second_channel(-5.0))
    assert not report.ok
    assert ("schema", "channels[1].amplitude_ma") in {(v.code, v.loc) for v in report.errors}


@pytest.mark.parametrize("amplitude", [math.nan, math.inf, 0.0])
def test_a_non_finite_or_zero_amplitude_slipped_past_the_model_is_refused(
    amplitude: float,
) -> None:
    assert "schema" in validate_profile(with_second_channel(amplitude)).codes


def test_the_controller_refuses_it_at_load() -> None:
    with Controller.connect(None, speed=math.inf) as ctl, pytest.raises(ValidationRefused):
        ctl.load(with_second_channel(-5.0))
