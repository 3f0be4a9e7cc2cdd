"""TOML for profiles: a fast reader for plain documents, the standard library's ``tomllib`` for
everything else, so that exactly what tomllib accepts is accepted, with the same values.

Profiles are plain TOML: ``key = value`` lines with bare keys, ``[table]`` and
``[[array-of-tables]]`` headers one level deep, comments. ``loads`` reads such a document line
by line with one regular expression per line, about four times faster than tomllib. It reads
only a subset it can read exactly as tomllib does:

* values: basic strings without escapes (multi-line ones may end lines with a backslash),
  one-line literal strings, decimal integers and floats without underscores, ``inf``/``nan``,
  booleans, one-line arrays of numbers;
* each key given once per table, each header name new (or ``[[name]]`` again).

At anything else (escapes, multi-line strings, dotted or quoted keys, inline tables, dates,
a key or table given twice, a line that is not TOML at all) it stops and hands the whole
document to ``tomllib.loads``, which parses it or raises its own error: errors, and values
outside the subset, always come from tomllib itself. tests/test_plaintoml.py holds the two to
the same answers on the refusal cases and on generated documents.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

__all__ = ["loads"]

_KEY = r"[A-Za-z0-9_-]++"
_WS = r"[ \t]*+"
#: Decimal number without underscores (tomllib's RE_NUMBER, decimal branch), or inf/nan.
_NUMBER = r"[+-]?(?:(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?|inf|nan)"
#: Characters tomllib refuses in one-line strings and comments: ASCII controls but tab.
_CONTROL = r"\x00-\x08\x0a-\x1f\x7f"
#: The same but for newline: what a multi-line basic string may hold.
_CONTROL_BUT_NEWLINE = r"\x00-\x08\x0b-\x1f\x7f"
#: A backslash ending a line in a multi-line basic string, and the whitespace it drops.
_CONTINUATION = r"\\[ \t]*+\n[ \t\n]*+"
_MULTI = rf'"""(?P<multi>(?:[^"\\{_CONTROL_BUT_NEWLINE}]|"{{1,2}}(?!")|{_CONTINUATION})*+)"""(?!")'
_STATEMENT = re.compile(
    rf"""{_WS}(?:
        (?P<key>{_KEY}){_WS}={_WS}(?:
            {_MULTI}
            | "(?P<basic>[^"\\{_CONTROL}]*+)"
            | '(?P<literal>[^'{_CONTROL}]*+)'
            | (?P<number>{_NUMBER})
            | (?P<bool>true|false)
            | \[(?P<array>{_WS}(?:{_NUMBER}(?:{_WS},{_WS}{_NUMBER})*{_WS},?)?{_WS})\]
        )
        | \[\[{_WS}(?P<tables>{_KEY}){_WS}\]\]
        | \[{_WS}(?P<table>{_KEY}){_WS}\]
    )?{_WS}(?:\#[^{_CONTROL}]*+)?(?:\n|\Z)""",
    re.VERBOSE,
)
_CONTINUATIONS = re.compile(_CONTINUATION)
# Possessive quantifiers (*+, ++) never give back what they matched: no pattern here can
# backtrack over a long run of one character, so a hostile file costs linear time.


class _Unsupported(Exception):
    """The document leaves the plain subset: tomllib reads it."""


def loads(text: str) -> dict[str, Any]:
    """Parse TOML exactly as ``tomllib.loads`` does (raising its TOMLDecodeError)."""
    try:
        return _plain(text)
    except (_Unsupported, ValueError):
        return tomllib.loads(text)


def _number(text: str) -> int | float:
    """tomllib's value for a decimal number (``int(text, 0)`` or ``float(text)``)."""
    digits = text[1:] if text[0] in "+-" else text
    return int(text, 0) if digits.isdigit() else float(text)


def _plain(text: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    arrays: set[str] = set()  # names made by [[name]]
    table = root
    text = text.replace("\r\n", "\n")
    match, pos, end = _STATEMENT.match, 0, len(text)
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise _Unsupported
        pos = m.end()
        key, multi, basic, literal, number, boolean, array, tables, name = m.groups()
        if key is not None:
            if key in table:
                raise _Unsupported
            if basic is not None:
                table[key] = basic
            elif number is not None:
                table[key] = _number(number)
            elif array is not None:
                items = [item.strip(" \t") for item in array.split(",")]
                if items[-1] == "":
                    items.pop()  # a trailing comma, or []
                table[key] = [_number(item) for item in items]
            elif multi is not None:
                if multi.startswith("\n"):
                    multi = multi[1:]  # a newline right after the opening quotes is dropped
                table[key] = _CONTINUATIONS.sub("", multi)
            elif literal is not None:
                table[key] = literal
            else:
                table[key] = boolean == "true"
        elif tables is not None:
            if tables not in root:
                root[tables] = []
                arrays.add(tables)
            elif tables not in arrays:
                raise _Unsupported
            table = {}
            root[tables].append(table)
        elif name is not None:
            if name in root:
                raise _Unsupported
            table = root[name] = {}
    return root
