"""JSON as the real gateway's reader takes it: strict JSON, plus a trailing comma before `}` or `]`.

The gateway's backend reads bodies with a lenient .NET reader; real shops send
`{"amount": "1000",}` and are answered 200 (docs/fidelity.md). This module finds such commas
with a scanner that knows where strings begin and end, so a comma inside a string is never
touched, and reports each one as a deviation: the caller warns about it, or refuses it under
--strict. Nothing else is relaxed: `[,]`, `[1,,]` and a comma before `:` stay errors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

_WHITESPACE = " \t\n\r"  # JSON's four, as json.loads skips them
_CLOSERS = "}]"
_NO_VALUE_BEFORE = {"", "[", "{", ",", ":"}  # a comma after these ends no value: not a trailing comma


@dataclass(frozen=True)
class Reading:
    """The value read, and one plain sentence per tolerated deviation (empty for strict JSON)."""

    value: object
    deviations: list[str] = field(default_factory=list)


def loads(text: str) -> Reading:
    """Read `text`; json.JSONDecodeError if even the lenient reader cannot (its position is
    the one in `text`: a tolerated comma is blanked, never removed)."""
    try:
        return Reading(json.loads(text))  # nearly every body: strict JSON, no scan
    except json.JSONDecodeError:
        commas = trailing_commas(text)
        if not commas:
            raise
    blanked = list(text)
    for at in commas:
        blanked[at] = " "
    value = json.loads("".join(blanked))
    return Reading(value, [f"trailing comma before {_next_closer(text, at)} at {_where(text, at)}"
                           for at in commas])


def trailing_commas(text: str) -> list[int]:
    """Offsets of the commas, outside strings, that follow a value and are followed (after
    whitespace only) by `}` or `]`."""
    found = []
    in_string = escaped = False
    last = ""  # the last character outside strings that is not whitespace
    comma = None  # offset of a comma not yet followed by anything but whitespace
    for at, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in _WHITESPACE:
            continue
        if char in _CLOSERS and comma is not None:
            found.append(comma)
        comma = at if char == "," and last not in _NO_VALUE_BEFORE else None
        if char == '"':
            in_string = True
        last = char
    return found


def _next_closer(text: str, comma: int) -> str:
    return text[comma + 1:].lstrip(_WHITESPACE)[0]


def _where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    return f"line {line} column {column}"
