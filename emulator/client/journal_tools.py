"""The journal and the callback ledger read the way a test or a shell asks: requests matched by
endpoint, status and fields (`EmulatorClient.assert_requested`, `payletter-emulator requests`),
what a miss came closest to, and what is new since the last look (`--follow`, `callbacks tail`)."""
from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from .control_client import EmulatorClient

PAGE = 200  # journal entries asked for at a time when looking for new ones
CLOSEST = 5  # requests shown when an assertion misses
_STATUS = re.compile(r"([1-5])(?:xx|XX|(\d\d))")


def endpoint(path: str) -> str:
    """`payments/cancel` from `/v1.0/payments/cancel`, `v1.0/payments/cancel/` or itself: one
    spelling for the user's path and the journal's."""
    return path.strip().strip("/").removeprefix("v1.0/")


def status_test(text: str) -> Callable[[int], bool]:
    """Whether an answer's status is the one asked for: `406`, or a class, `4xx`."""
    found = _STATUS.fullmatch(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a status (406) or a class of them (4xx)")
    if found.group(2) is None:
        return lambda status: status is not None and status // 100 == int(found.group(1))
    return lambda status: status == int(text)


def fields_of(entry: Mapping[str, Any]) -> dict:
    """What a request carried: its JSON body, or (a GET) its query's parameters."""
    body = entry.get("request")
    if isinstance(body, dict):
        return body
    return dict(parse_qsl(entry.get("query") or "", keep_blank_values=True))


def differences(entry: Mapping[str, Any], fields: Mapping[str, Any]) -> list[str]:
    """The fields whose value in `entry` is not the one wanted, each said in a few words."""
    sent = fields_of(entry)
    found = []
    for name, wanted in fields.items():
        if name not in sent:
            found.append(f"{name}: not sent (expected {wanted!r})")
        elif sent[name] != wanted:
            found.append(f"{name}: sent {sent[name]!r}, expected {wanted!r}")
    return found


def matches(entry: Mapping[str, Any], *, path: str | None = None, status: Callable[[int], bool] | None = None,
            fields: Mapping[str, Any] | None = None) -> bool:
    return (path is None or endpoint(entry["path"]) == endpoint(path)) \
        and (status is None or status(entry["status"])) \
        and not differences(entry, fields or {})


def entry_line(entry: Mapping[str, Any]) -> str:
    query = f"?{entry['query']}" if entry.get("query") else ""
    return f"#{entry['id']} {(entry.get('at') or '')[11:19]} {entry['method']} {entry['path']}{query} -> {entry['status']}"


def assert_requested(entries: list[dict], path: str, times: int | None, fields: Mapping[str, Any]) -> list[dict]:
    """The entries to `path` with `fields`, if there are `times` of them (at least one when None);
    else an AssertionError saying what the journal holds that comes closest."""
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0):
        raise ValueError(f"times must be a count (0 or more), not {times!r}")
    found = [entry for entry in entries if matches(entry, path=path, fields=fields)]
    if (times is None and found) or len(found) == times:
        return found
    raise AssertionError(miss_report(entries, path, times, fields, found))


def miss_report(entries: list[dict], path: str, times: int | None, fields: Mapping[str, Any],
                found: list[dict]) -> str:
    wanted = endpoint(path)
    told = ", ".join(f"{name}={value!r}" for name, value in fields.items())
    expected = "at least one request" if times is None else f"{times} request{'s' * (times != 1)}"
    lines = [f"expected {expected} to {wanted}{' with ' + told if told else ''}; the journal holds "
             f"{len(found)} (of {len(entries)} gateway API request{'s' * (len(entries) != 1)})"]
    if found:
        lines.append("the ones that match:")
        lines += [f"  {entry_line(entry)}" for entry in found]
        return "\n".join(lines)
    if not entries:
        lines.append("the journal holds no gateway API request: did the code under test reach this emulator "
                     "(its URL and keys)?")
        return "\n".join(lines)
    paths = Counter(endpoint(entry["path"]) for entry in entries)
    alike = set(difflib.get_close_matches(wanted, paths, n=3, cutoff=0.6))
    alike |= {p for p in paths if p.startswith(wanted + "/") or wanted.startswith(p + "/")}
    same = [entry for entry in entries if endpoint(entry["path"]) == wanted]
    near = [entry for entry in entries if endpoint(entry["path"]) in alike - {wanted}]
    # The fewest differing fields first, then the newest.
    closest = sorted(same, key=lambda entry: (len(differences(entry, fields)), -entry["id"]))
    closest += sorted(near, key=lambda entry: (len(differences(entry, fields)), -entry["id"]))
    if not closest:
        lines.append(f"nothing to {wanted} or a path like it; the journal holds: "
                     + ", ".join(f"{name} ({count})" for name, count in paths.most_common()))
        return "\n".join(lines)
    lines.append("the closest requests in the journal:")
    for entry in closest[:CLOSEST]:
        where = "" if endpoint(entry["path"]) == wanted else " (another path)"
        told_apart = differences(entry, fields) or (["the fields match"] if fields else [])
        lines.append(f"  {entry_line(entry)}{where}")
        lines += [f"      {line}" for line in told_apart]
    if len(closest) > CLOSEST:
        lines.append(f"  ... and {len(closest) - CLOSEST} more")
    return "\n".join(lines)


class JournalReader:
    """The journal's entries not yet read, oldest first, found with the journal's own paging
    cursor (`earlier`): the newest page, and the pages before it until one holds an entry read."""

    def __init__(self, client: EmulatorClient, page: int = PAGE):
        self.client, self.page = client, page
        self.last = 0  # the highest id read

    def read(self) -> list[dict]:
        params: dict[str, Any] = {"limit": self.page}
        found: list[dict] = []
        while True:
            answer = self.client.control("GET", "/requests", params=params)
            entries = answer["requests"]
            if "before" not in params and (entries[-1]["id"] if entries else 0) < self.last:
                self.last = 0  # a reset emptied the journal: its ids start again
            found[:0] = [entry for entry in entries if entry["id"] > self.last]
            if not answer.get("earlier") or any(entry["id"] <= self.last for entry in entries):
                break
            params["before"] = answer["earlier"]
        if found:
            self.last = max(entry["id"] for entry in found)
        return found


class LedgerReader:
    """The callback attempts not yet read, in the order they were made, each once it has an
    outcome (an attempt under way shows when it ends): one line per attempt, with its notification's
    id, tid, URL and status."""

    def __init__(self, client: EmulatorClient, tid: str | None = None):
        self.client, self.tid = client, tid
        self.seen: set[tuple] = set()

    def read(self) -> list[dict]:
        found = []
        for callback in self.client.callbacks.list(tid=self.tid):
            for attempt in callback["attempts"]:
                # A notification's id and an attempt's number start again after a reset; the
                # moment it was made does not.
                key = (callback["id"], attempt["number"], attempt.get("wall_time"))
                if attempt.get("state") == "sending" or key in self.seen:
                    continue
                self.seen.add(key)
                found.append({"callback_id": callback["id"], "tid": callback["tid"], "url": callback["url"],
                              "callback_status": callback["status"], **attempt})
        return sorted(found, key=lambda line: (line.get("wall_time") or "", line["id"]))


def json_line(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
