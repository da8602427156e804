"""Scenario files: read (YAML or JSON), checked against schemas/scenario.json and a few rules
of sense, merged in order, and consulted at each moment a rule may decide."""
from __future__ import annotations

import contextlib
import difflib
import gc
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..domain.clock import KST
from ..domain import endpoints, global_rules
from ..config import Client
from ..domain.methods import table as method_table
from ..domain.rules import API, STAGES, Rule, compile_rule, regex
from ..resources import schemas_dir, scenarios_dir
from ..storage import Storage

SUFFIXES = (".yaml", ".yml", ".json")
# Bytes of one scenario document (a file, a PUT body): reading and checking one takes about a
# second per MiB, which nothing else may wait for (docs/decisions.md, "A scenario is at most 256 KiB").
SIZE_LIMIT = 256 * 1024
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # PyYAML built without libyaml has the Python one only
OUTAGE_RULE = "timeline outage {index}"
OUTAGE = {"status": 503, "code": 999, "message": "Internal server error (scenario: the gateway is down)"}


class ScenarioError(ValueError):
    """Every problem of a scenario, each as `source: path: what is wrong`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def resolve(reference: str) -> Path:
    """A file path, or the name of a scenario shipped in scenarios/ (`declined-cards`)."""
    path = Path(reference)
    if path.is_file():
        return path
    for suffix in ("", *SUFFIXES):
        bundled = scenarios_dir() / f"{reference}{suffix}"
        if bundled.is_file():
            return bundled
    shipped = ", ".join(sorted(p.stem for p in scenarios_dir().iterdir() if p.suffix in SUFFIXES))
    raise ScenarioError([f"{reference}: no such file, and no scenario of that name (shipped: {shipped})"])


def read(reference: str) -> dict:
    """One scenario file, checked; ScenarioError names the file, the place in it and the rule."""
    path = resolve(reference)
    size = path.stat().st_size
    if size > SIZE_LIMIT:
        raise ScenarioError([too_large(str(path), size)])
    text = path.read_text("utf-8")
    try:
        document = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ScenarioError([f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"]) from None
    check(document, str(path))
    return document


def too_large(source: str, size: int | None = None) -> str:
    """The refusal of a document past SIZE_LIMIT (`size`: its bytes, where known)."""
    told = f"{size:,} bytes, more" if size is not None else "more"
    return f"{source}: {told} than the {SIZE_LIMIT:,} bytes a scenario may be (split it, or drop rules a test does not use)"


def load_yaml(text: str):
    """YAML read as safe_load reads it, by libyaml's C parser where PyYAML has it (five times
    faster: a 256 KiB document in a fifth of a second rather than a second)."""
    with _collector_paused():
        return yaml.load(text, Loader=_YAML_LOADER)


_paused = {"count": 0, "was_on": False}
_pause_lock = threading.Lock()


@contextlib.contextmanager
def _collector_paused():
    """Python's cycle collector off while a document is parsed. The parser's node graph (each
    node with its marks) is a few hundred thousand objects, and one full collection over them held
    the interpreter for a tenth of a second or more, every other request of the process waiting.
    What the parse leaves is freed by reference counting; other threads' cycles wait for the next
    collection. Counted, so that parses at once turn it back on once, after the last."""
    with _pause_lock:
        if _paused["count"] == 0:
            _paused["was_on"] = gc.isenabled()
            gc.disable()
        _paused["count"] += 1
    try:
        yield
    finally:
        with _pause_lock:
            _paused["count"] -= 1
            if _paused["count"] == 0 and _paused["was_on"]:
                gc.enable()


def load(references) -> dict | None:
    """The scenario of several files (or names), merged in order; None for no file."""
    documents = [read(reference) for reference in references]
    if not documents:
        return None
    return documents[0] if len(documents) == 1 else merge(documents)


VALUE_BUDGET = 100_000  # values a scenario may expand to (YAML aliases can make a few bytes huge)
MESSAGE_LIMIT = 500


def check(document, source: str) -> None:
    """Raise ScenarioError unless `document` is a valid scenario."""
    if not _within_budget(document, VALUE_BUDGET):
        raise ScenarioError([f"{source}: (top): expands to more than {VALUE_BUDGET:,} values "
                             f"(YAML aliases repeated inside one another?)"])
    # best_match descends into oneOf alternatives to the error that says most.
    found = [best_match([e]) for e in _validator().iter_errors(document)]
    problems = [f"{source}: {_where(e.absolute_path)}: {_message(e)}"[:MESSAGE_LIMIT]
                for e in sorted(found, key=lambda e: list(map(str, e.absolute_path)))]
    # In the same pass, not once the schema's are fixed: a file is mended in one round.
    problems += [f"{source}: {where}: {what}" for where, what in _sense(document)]
    if problems:
        raise ScenarioError(problems)


def _within_budget(document, budget: int) -> bool:
    """Count the values as a reader of the document would see them (an alias counts each time
    it is used), giving up as soon as there are more than `budget`."""
    seen, stack = 0, [document]
    while stack:
        value = stack.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


def _message(error) -> str:
    """The schema's message, with what the place expects when it has alternatives, and what a
    misspelt name or a YAML boolean was probably meant to be."""
    expected = error.schema.get("description") if error.validator in ("oneOf", "anyOf", "minProperties",
                                                                     "maxProperties") else None
    if expected:
        return f"{error.instance!r} is not allowed here; expected: {expected}{_did_you_mean(error)}"
    if error.validator == "additionalProperties":
        return error.message + _did_you_mean(error)
    if error.validator == "type" and error.validator_value == "string" and isinstance(error.instance, (int, float)) \
            and not isinstance(error.instance, bool):
        return f"{error.message}; quote it: '{error.instance}'"  # YAML reads an unquoted 6001 as a number
    return error.message


def _did_you_mean(error) -> str:
    """`; did you mean ...?` for names the place does not know, or a value YAML read as a boolean."""
    instance = error.instance
    if isinstance(instance, bool):
        return ("; did you mean a text? YAML reads an unquoted true/false/yes/no/on/off as a boolean: "
                "quote it (\"yes\")")
    if not isinstance(instance, dict):
        return ""
    alternatives = [error.schema, *error.schema.get("oneOf", []), *error.schema.get("anyOf", [])]
    known = [name for schema in alternatives for name in schema.get("properties", {})]
    hints = [f"{name!r}: did you mean {close[0]!r}?" for name in instance if name not in known
             if (close := difflib.get_close_matches(str(name), known, n=1, cutoff=0.6))]
    return f"; {' '.join(hints)}" if hints else ""


def _validator() -> Draft202012Validator:
    schema = json.loads((schemas_dir() / "scenario.json").read_text("utf-8"))
    return Draft202012Validator(schema)


def _where(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def _sense(document):
    """What a schema cannot say: regexes that compile, moments that parse, names used once,
    conditions that can apply at the rule's moment. It reads only the parts whose shape is right,
    so that it can run beside the schema's check on a document that fails it."""
    if not isinstance(document, dict):
        return
    names = set()
    for index, rule in enumerate(_items(document.get("rules"))):
        where = f"rules[{index}]"
        if not isinstance(rule, dict):
            continue
        name = rule.get("name")
        if isinstance(name, str):
            if name in names:
                yield f"{where}.name", f"{name!r} is the name of an earlier rule; names must be unique"
            names.add(name)
        when = _mapping(rule.get("when"))
        then = _mapping(rule.get("then"))
        outcome = next(iter(then)) if len(then) == 1 and next(iter(then)) in STAGES else None
        for key, spec in when.items():
            for inner, value in (_mapping(spec).items() if key == "header" else [(None, spec)]):
                if isinstance(value, dict) and isinstance(value.get("regex"), str):
                    try:
                        regex(value["regex"])
                    except ValueError as exc:
                        path = f"{where}.when.{key}" + (f".{inner}" if inner else "")
                        yield f"{path}.regex", f"{value['regex']!r} is not a regular expression RE2 accepts: {exc}"
        time = _mapping(when.get("time"))
        for bound in ("from", "until"):
            if bound in time:
                yield from _moment_problem(time[bound], f"{where}.when.time.{bound}")
        if outcome and STAGES[outcome] != API and "endpoint" in when:
            yield f"{where}.when.endpoint", f"{outcome} happens to a payment, not to an API request: drop endpoint"
        if outcome and STAGES[outcome] == API and "card_number" in when:
            yield f"{where}.when.card_number", "the payer types the card number after the API request: " \
                                               "card_number can only choose approve, decline or abandon"
        if "endpoint" in when:
            yield from _endpoint_problems(when["endpoint"], f"{where}.when.endpoint")
        if "pgcode" in when:
            yield from _pgcode_problems(when["pgcode"], f"{where}.when.pgcode")
        if "pginfo" in when:
            yield from _pginfo_problems(when["pginfo"], f"{where}.when.pginfo")
    for index, event in enumerate(_items(document.get("timeline"))):
        if not isinstance(event, dict):
            continue
        if "at" in event:
            yield from _moment_problem(event["at"], f"timeline[{index}].at")
        outage = _mapping(event.get("outage"))
        if "until" in outage:
            yield from _moment_problem(outage["until"], f"timeline[{index}].outage.until")
            start, end = _moment(event.get("at")), _moment(outage["until"])
            if start and end and end <= start:
                yield f"timeline[{index}].outage.until", "the outage must end after it starts"
    start = _mapping(_mapping(document.get("settings")).get("clock")).get("start")
    if start is not None:
        yield from _moment_problem(start, "settings.clock.start")


def _items(value) -> list:
    return value if isinstance(value, list) else []


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _endpoint_problems(spec, where: str):
    known = (*endpoints.BY_NAME, *global_rules.ENDPOINTS)  # both gateways' routes are made from the same lists
    for value in spec if isinstance(spec, list) else [spec] if not isinstance(spec, dict) else []:
        if value not in known:
            yield where, f"{value!r} is not an endpoint; one of {', '.join(known)}"


def _pgcode_problems(spec, where: str):
    """A pgcode a rule waits for must be one the gateway knows (a method's, or an option's such as
    naverpoint), or the rule could never apply."""
    known = [code for method in method_table().values() for code in (method.pgcode, *(o.pgcode for o in method.options))]
    for value in spec if isinstance(spec, list) else [spec] if not isinstance(spec, dict) else []:
        if str(value) not in known:
            close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else " (docs/payment-methods.md lists them)"
            yield where, f"{value!r} is not a pgcode{hint}"


def _pginfo_problems(spec, where: str):
    """A Global pginfo a rule waits for must be one Payletter Global has (matched as written:
    the payment keeps the canonical name)."""
    known = list(global_rules.table()["pginfo"])
    for value in spec if isinstance(spec, list) else [spec] if not isinstance(spec, dict) else []:
        if str(value) not in known:
            close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (one of {', '.join(known)})"
            yield where, f"{value!r} is not a Payletter Global pginfo{hint}"


def _moment_problem(text: str, where: str):
    if isinstance(text, str) and _moment(text) is None:  # not a text at all: the schema says so
        yield where, f"{text!r} is not an ISO 8601 date and time (e.g. 2026-11-29T10:00:00+09:00)"


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=KST)


def merge(documents: list[dict]) -> dict:
    """Files in order: settings of later files win, clients (by client_id) too; rules and
    timeline events are appended."""
    merged: dict = {"version": 1, "name": " + ".join(d.get("name", "unnamed") for d in documents)[:100],
                    "settings": {}, "clients": [], "rules": [], "timeline": []}
    clients: dict[str, dict] = {}
    for document in documents:
        for key, value in document.get("settings", {}).items():
            merged["settings"][key] = {**merged["settings"].get(key, {}), **value} if isinstance(value, dict) else value
        clients.update({c["client_id"]: c for c in document.get("clients", [])})
        merged["rules"] += document.get("rules", [])
        merged["timeline"] += document.get("timeline", [])
    merged["clients"] = list(clients.values())
    if len(documents) == 1 and "description" in documents[0]:
        merged["description"] = documents[0]["description"]
    check(merged, "the merged scenario")
    return merged


@dataclass
class Scenario:
    """A checked document, compiled: rules by stage in file order, timed events, settings."""

    document: dict
    rules: list[Rule] = field(default_factory=list)

    @classmethod
    def of(cls, document: dict) -> "Scenario":
        rules = [compile_rule(_outage_rule(i, e), _moment) for i, e in enumerate(document.get("timeline", []))
                 if "outage" in e]
        rules += [compile_rule(spec, _moment) for spec in document.get("rules", [])]
        return cls(document, rules)

    @property
    def settings(self) -> dict:
        return self.document.get("settings", {})

    @property
    def clients(self) -> tuple[Client, ...]:
        return tuple(Client(c["client_id"], c["payment_key"], c["search_key"])
                     for c in self.document.get("clients", []))

    @property
    def events(self) -> list[tuple[datetime, str, dict]]:
        """The timeline's deposits and expiries (outages are rules)."""
        return [(_moment(e["at"]), kind, params) for e in self.document.get("timeline", [])
                for kind, params in e.items() if kind not in ("at", "outage")]

    def clock_start(self) -> datetime | None:
        start = self.settings.get("clock", {}).get("start")
        return _moment(start) if start else None


def _outage_rule(index: int, event: dict) -> dict:
    outage = {**OUTAGE, **{k: v for k, v in event["outage"].items() if k != "until"}}
    return {"name": OUTAGE_RULE.format(index=index), "when": {"time": {"from": event["at"],
                                                                       "until": event["outage"]["until"]}},
            "then": {"api_error": outage}}


EMPTY = Scenario({"version": 1, "name": "none"})


class Rulebook:
    """The scenario in force for every process on one database: the document and how often
    each rule has applied live in storage, so `times` counts across processes."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.scenario = EMPTY
        self.version = 0

    def sync(self, version: int) -> bool:
        """Take the scenario another process (or a restart) installed, given the stored
        version the caller has just read; True if it changed."""
        if version == self.version:
            return False
        stored = self.storage.scenario_document()
        self.scenario = Scenario.of(stored) if stored else EMPTY
        self.version = version
        return True

    def install(self, document: dict | None) -> Scenario:
        """Put `document` in force (None: no scenario), with every rule's count back at zero."""
        self.version = self.storage.save_scenario(document)
        self.scenario = Scenario.of(document) if document else EMPTY
        return self.scenario

    def decide(self, stage: str, context: dict, now: datetime) -> Rule | None:
        """The first rule of `stage` that matches and has applications left; it is counted."""
        for rule in self.scenario.rules:
            if rule.stage == stage and rule.matches(context, now) and self.storage.take_rule_hit(rule.name, rule.times):
                return rule
        return None

    def rules_view(self) -> dict:
        hits = self.storage.rule_hits()
        return {"version": self.version, "scenario": self.scenario.document,
                "rules": [{"name": r.name, "stage": r.stage, "outcome": r.outcome,
                           "times": r.times if r.times is not None else "always", "applied": hits.get(r.name, 0)}
                          for r in self.scenario.rules]}
