"""`stimctl validate`: check profile files and folders against the safety rules.

Exit 0 when no profile has an error (warnings allowed), 1 when any has one (unparsable files
included), 2 for usage errors: a path that does not exist or holds no profile, an unknown
patient flag, a bad envelope file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from stimctl.cli.safety_options import UsageError, add_safety_options, safety_options
from stimctl.host.status import ExitCode

if TYPE_CHECKING:
    from stimctl.rules.report import Report
    from stimctl.rules.violations import Violation

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = ExitCode.OK, ExitCode.REFUSED, ExitCode.USAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check profiles against the safety rules",
        description="Validate profiles (files, or folders searched for *.toml and *.json).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="profile file or folder")
    parser.add_argument("--json", action="store_true", help="print a JSON array of reports")
    add_safety_options(parser)
    parser.set_defaults(func=_run)


def _usage(message: str) -> int:
    print(f"stimctl validate: {message}", file=sys.stderr)
    return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stimctl.rules.validation import find_profiles, validate_file

    try:
        patient, envelope = safety_options(args)
    except UsageError as error:
        return _usage(str(error))
    files: list[Path] = []
    for given in args.paths:
        try:
            found = find_profiles(given)
        except FileNotFoundError as error:
            return _usage(str(error))
        if not found:
            return _usage(f"{given}: no *.toml or *.json profile found")
        files.extend(p for p in found if p not in files)
    reports = [validate_file(path, envelope, patient) for path in files]
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        for report in reports:
            write_report(report, sys.stdout)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_REFUSED


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_violation(v: Violation) -> str:
    """One indented line: severity, code, location, actual vs limit, message, source."""
    figures = ""
    if v.actual is not None and v.limit is not None:
        figures = f" actual {_show(v.actual)} vs limit {_show(v.limit)};"
    elif v.actual is not None:
        figures = f" got {_show(v.actual)!r};" if isinstance(v.actual, str) else ""
    return (
        f"  {v.severity:<7} {v.code} at {v.loc or '(profile)'}:{figures} {v.message} [{v.source}]"
    )


def write_report(report: Report, out: TextIO) -> None:
    """Human output: one line for the profile, then one per violation."""
    errors, warnings = len(report.errors), len(report.warnings)
    status = "ok  " if report.ok else "FAIL"
    counts = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    name = f" ({report.profile.name})" if report.profile is not None else ""
    out.write(f"{status} {report.path}{name}: {counts}\n")
    for v in report.violations:
        out.write(format_violation(v) + "\n")
