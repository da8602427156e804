"""What the pytest plugin prints: a failing test's journal and callbacks, and the run's coverage
(several emulators' merged, under pytest-xdist; a shared emulator's earlier runs subtracted)."""
from __future__ import annotations

import json
from typing import Any

from .control_client import EmulatorClient, attempt_outcome

SHOWN_REQUESTS = 50  # journal entries shown for a failing test (the newest)
BODY_CHARS = 240  # characters of a body shown per journal line or attempt


def describe(client: EmulatorClient) -> list[tuple[str, str]]:
    """The journal and the callback ledger of `client`, a line or a few each, for a report."""
    try:
        clock = client.clock.state()
        journal = client.requests()
        callbacks = client.callbacks.list()
    except Exception as exc:  # the report must still be written when the emulator is gone
        return [("payletter", f"could not read the emulator at {client.url}: {exc}")]
    head = f"{client.url}, clock {clock['now']}{' (frozen)' if clock['frozen'] else ''}"
    lines = [head, *(_journal_line(entry) for entry in journal[-SHOWN_REQUESTS:])]
    if len(journal) > SHOWN_REQUESTS:
        lines.insert(1, f"... {len(journal) - SHOWN_REQUESTS} earlier requests")
    if not journal:
        lines.append("(no gateway API request)")
    ledger = [line for callback in callbacks for line in _callback_lines(callback)] or ["(no callback)"]
    return [("payletter journal", "\n".join(lines)), ("payletter callbacks", "\n".join(ledger))]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + "..."


def _time(moment: str | None) -> str:
    return (moment or "")[11:19]


def _journal_line(entry: dict) -> str:
    query = f"?{entry['query']}" if entry.get("query") else ""
    line = f"{_time(entry['at'])} {entry['method']} {entry['path']}{query} -> {entry['status']}"
    if entry.get("request") is not None:
        line += f"\n    sent     {_short(entry['request'])}"
    if entry.get("response") is not None:
        line += f"\n    answered {_short(entry['response'])}"
    notes = ([f"rule: {entry['rule']}"] if entry.get("rule") else []) + \
            [f"warning: {w}" for w in entry.get("warnings") or []] + \
            ([f"error: {entry['error']}"] if entry.get("error") else [])
    return line + "".join(f"\n    {note}" for note in notes)


def _callback_lines(callback: dict) -> list[str]:
    nxt = f", next attempt {callback['next_attempt_at']}" if callback.get("next_attempt_at") else ""
    lines = [f"#{callback['id']} {callback['tid']} -> {callback['url']}: {callback['status']}, "
             f"{callback['attempts_made']} attempt(s){nxt}",
             f"    body {_short(callback['body'])}"]
    for attempt in callback["attempts"]:
        outcome = attempt_outcome(attempt, BODY_CHARS)  # the merchant's status and body, not only "not acknowledged"
        lines.append(f"    {attempt['number']}. {attempt['kind']} at {_time(attempt['at'])}: {outcome}")
    return lines


# What coverage counts: the domestic gateway's, then Payletter Global's (an emulator before Global has none).
COUNTED = ("endpoints", "pgcodes", "error_codes", "rules", "callbacks", "global_endpoints", "global_pginfo",
           "global_error_codes")


def merge_coverage(parts: list[dict], combine=sum) -> dict:
    """Several emulators' coverage as one: counts added (`combine=sum`; `max` for readings of one
    emulator), and never exercised only what none of them exercised."""
    merged: dict = {}
    for name in COUNTED:
        keys = dict.fromkeys(key for part in parts for key in (part.get(name) or {}))
        merged[name] = {key: combine((part.get(name) or {}).get(key, 0) for part in parts) for key in keys}
    nevers = [part.get("never") or {} for part in parts]
    merged["never"] = {name: [item for item in nevers[0].get(name, []) if all(item in n.get(name, []) for n in nevers)]
                       for name in nevers[0]}
    return merged


def subtract_coverage(now: dict, before: dict) -> dict:
    """What one emulator counted since `before` was read (a shared emulator's earlier runs left
    out): counts less those of `before`, and what only earlier runs exercised is never exercised
    again."""
    delta: dict = {}
    never = {name: list(items) for name, items in (now.get("never") or {}).items()}
    for name in COUNTED:
        counts = {key: count - (before.get(name) or {}).get(key, 0) for key, count in (now.get(name) or {}).items()}
        if name == "callbacks":  # its outcomes are always listed, zero or not
            delta[name] = {key: max(count, 0) for key, count in counts.items()}
            continue
        delta[name] = {key: count for key, count in counts.items() if count > 0}
        if name in never:
            never[name] += [key for key in counts if key not in delta[name] and key not in never[name]]
    delta["never"] = never
    return delta


def coverage_lines(coverage: dict) -> list[str]:
    """A few lines: what was exercised how often, and what never was."""
    def counts(name: str) -> str:
        items = sorted((coverage.get(name) or {}).items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{key} {count}" for key, count in items) or "none"

    never = coverage.get("never") or {}
    callbacks = coverage.get("callbacks") or {}
    lines = [f"endpoints: {counts('endpoints')}", f"pgcodes: {counts('pgcodes')}",
             f"error codes: {counts('error_codes')}", f"scenario rules: {counts('rules')}",
             "callbacks: " + (", ".join(f"{key.replace('_', ' ')} {value}" for key, value in callbacks.items())
                              or "none")]
    used_global = any(coverage.get(name) for name in ("global_endpoints", "global_pginfo", "global_error_codes"))
    if used_global:  # a suite that never calls Payletter Global is not told about it
        lines += [f"Payletter Global endpoints: {counts('global_endpoints')}", f"Payletter Global pginfo: "
                  f"{counts('global_pginfo')}", f"Payletter Global error codes: {counts('global_error_codes')}"]
    for name, missing in never.items():
        if missing and (used_global or not name.startswith("global_")):
            lines.append(f"never exercised ({name}): {', '.join(missing)}")
    return lines
