"""The `--patient` and `--envelope` options shared by `validate`, `run` (and their parsing)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stimctl.rules.envelope import SafetyEnvelope


class UsageError(ValueError):
    """A bad option value: the command prints it and exits 2."""


def add_safety_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--patient",
        action="append",
        default=[],
        metavar="FLAG[,FLAG]",
        help="patient flags: pregnant, implanted-device, epilepsy, anticoagulant (repeatable)",
    )
    parser.add_argument("--envelope", metavar="FILE", help="site safety envelope (TOML)")


def safety_options(args: argparse.Namespace) -> tuple[frozenset[str], SafetyEnvelope | None]:
    """The patient flags and the site envelope (None: the default); UsageError when bad."""
    from stimctl.rules.envelope import EnvelopeError, SafetyEnvelope
    from stimctl.rules.validation import check_patient

    flags = [f.strip() for item in args.patient for f in item.split(",") if f.strip()]
    try:
        patient = frozenset(check_patient(flags))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not args.envelope:
        return patient, None
    try:
        return patient, SafetyEnvelope.from_toml(args.envelope)
    except EnvelopeError as error:
        raise UsageError(str(error)) from None
