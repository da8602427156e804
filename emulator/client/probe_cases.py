"""Probe cases: files of requests (probes/*.yaml, checked against schemas/probe.json) that the
probe sends to a gateway and to the emulator alike, and the templates they are written with."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from ..resources import probes_dir, schemas_dir

# The Authorization header of `auth: invalid`: well formed, issued to nobody ("not-a-key").
INVALID_KEY = "bm90LWEta2V5"
TEMPLATE = re.compile(r"\{\{\s*([a-z_][a-z0-9_.\-]*)\s*\}\}")


class CaseError(Exception):
    """A case file that cannot be used: the file, the place in it and what is wrong."""


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    steps: tuple[dict, ...]
    cleanup: tuple[dict, ...] = ()
    description: str = ""
    evidence: str = ""

    @property
    def needs_payer(self) -> bool:
        return any("payer" in step for step in self.steps)


def step_name(step: dict, index: int) -> str:
    return step.get("name") or f"step{index + 1}"


def load(paths: list[str] | None = None, selected: tuple[str, ...] = ()) -> list[Case]:
    """The cases of the given files and folders (default: the shipped probes/), in file order;
    only those whose id matches one of `selected` (glob patterns) when any is given."""
    files: list[Path] = []
    for given in paths or [str(probes_dir())]:
        path = Path(given)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        elif path.is_file():
            files.append(path)
        else:
            raise CaseError(f"{given}: no such file or folder")
    cases, seen = [], {}
    for path in files:
        for case in read(path):
            if case.id in seen:
                raise CaseError(f"{path}: case {case.id!r} is already a case of {seen[case.id]}")
            seen[case.id] = path.name
            if not selected or any(fnmatch(case.id, pattern) for pattern in selected):
                cases.append(case)
    return cases


def read(path: Path) -> list[Case]:
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CaseError(f"{path}: cannot be read: {exc}") from None
    problems = [f"{path}: {_where(error.absolute_path)}: {error.message}"
                for error in sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))]
    if problems:
        raise CaseError("\n".join(problems))
    cases = []
    for index, raw in enumerate(document["cases"]):
        names = [step_name(step, i) for i, step in enumerate(raw["steps"])]
        if len(set(names)) != len(names):
            raise CaseError(f"{path}: cases[{index}]: two steps have the same name")
        for step in raw["steps"] + raw.get("cleanup", []):
            if "base64" in step:
                try:
                    base64.b64decode(step["base64"], validate=True)
                except ValueError:
                    raise CaseError(f"{path}: cases[{index}]: base64 is not base64") from None
        cases.append(Case(id=raw["id"], file=path.name, steps=tuple(raw["steps"]),
                          cleanup=tuple(raw.get("cleanup", ())), description=raw.get("description", ""),
                          evidence=raw.get("evidence", "")))
    return cases


def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads((schemas_dir() / "probe.json").read_text("utf-8")))


def _where(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


@dataclass
class Values:
    """What templates stand for on one side of a run: the probe's client, the run's unique
    text, today (KST), and the answers of the case's earlier steps on that side."""

    client_id: str
    unique: str
    today: str
    keys: dict[str, str] = field(default_factory=dict)  # payment_key, search_key: the header only
    steps: dict[str, object] = field(default_factory=dict)

    def lookup(self, name: str, *, header: bool = False):
        if name in ("client_id", "unique", "today"):
            return getattr(self, name)
        if name in self.keys:
            if not header:
                raise CaseError(f"{{{{{name}}}}} is allowed in an Authorization header only")
            return self.keys[name]
        parts = name.split(".")
        if parts[0] != "steps" or len(parts) < 3:
            raise CaseError(f"{{{{{name}}}}} is not a template this probe knows")
        value = self.steps.get(parts[1])
        for part in parts[2:]:
            if not isinstance(value, dict) or part not in value:
                raise CaseError(f"{{{{{name}}}}}: the answer of step {parts[1]!r} has no {'.'.join(parts[2:])}")
            value = value[part]
        return value

    def fill(self, value, *, header: bool = False):
        """A template's value: a text that is one template alone keeps the value's type (a
        token stays a number); templates inside a text are written into it."""
        if isinstance(value, str):
            whole = TEMPLATE.fullmatch(value)
            if whole:
                return self.lookup(whole.group(1), header=header)
            return TEMPLATE.sub(lambda m: str(self.lookup(m.group(1), header=header)), value)
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        return value


@dataclass(frozen=True)
class Prepared:
    """One HTTP request, ready to send."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes | None


def prepare(step: dict, values: Values) -> Prepared:
    """The request a step describes, its templates filled from `values`."""
    headers = {}
    auth = step["auth"]
    if isinstance(auth, dict):
        headers["Authorization"] = str(values.fill(auth["header"], header=True))
    elif auth in ("payment", "search"):
        headers["Authorization"] = f"PLKEY {values.keys[auth + '_key']}"
    elif auth == "invalid":
        headers["Authorization"] = f"PLKEY {INVALID_KEY}"
    body = None
    if "json" in step:
        body = json.dumps(values.fill(step["json"]), ensure_ascii=False).encode("utf-8")
    elif "text" in step:
        body = str(values.fill(step["text"])).encode("utf-8")
    elif "base64" in step:
        body = base64.b64decode(step["base64"])
    if body is not None or "content_type" in step:
        headers["Content-Type"] = step.get("content_type", "application/json")
    query = [(key, str(values.fill(value))) for key, value in step.get("query", {}).items()]
    return Prepared(step["method"], str(values.fill(step["path"])), query, headers, body)
