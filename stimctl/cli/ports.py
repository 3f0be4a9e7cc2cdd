"""`stimctl ports`: list serial ports with their USB serial numbers (for ``--port usb:SERIAL``)."""

from __future__ import annotations

import argparse
import json
import sys

from stimctl.host.status import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ports",
        help="list serial ports and USB serial numbers",
        description="List serial ports; connect to one with `stimctl run --port usb:SERIAL`.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from stimctl.host.ports import list_serial_ports

    ports = list_serial_ports()
    if args.json:
        json.dump([{**asdict(p), "usb_id": p.usb_id} for p in ports], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return ExitCode.OK
    if not ports:
        print("no serial ports found")
        return ExitCode.OK
    width = max(len(p.device) for p in ports)
    print(f"{'PORT':<{width}}  {'USB ID':<9}  {'SERIAL':<16}  DESCRIPTION")
    for p in ports:
        serial = p.serial_number or "-"
        print(f"{p.device:<{width}}  {p.usb_id or '-':<9}  {serial:<16}  {p.description}")
    return ExitCode.OK
