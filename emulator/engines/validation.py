"""Requests checked against the JSON Schemas in schemas/, with the real gateway's leniency.

Lenient mode repairs what real clients send (numbers as strings, empty optional fields,
query names in another case, unknown fields) and returns a warning for each repair; strict
mode turns the same deviations into 406 errors. Whatever is left is a GatewayError that
names the field and the rule.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ..domain.text import nul_field
from ..domain.errors import GatewayError

_WHOLE = re.compile(r"^-?[0-9]+$")
_EXPECTED = {"integer": "a whole number of KRW", "string": "a string", "object": "a JSON object",
             "number": "a number", "boolean": "true or false"}


def refuse_nul(data) -> None:
    """406 naming the field whose text holds NUL (\\u0000), before anything is stored."""
    where = nul_field(data)
    if where is not None:
        raise GatewayError("field_invalid", field=where.replace("\x00", "\\u0000"),
                           rule="must not contain the NUL character (\\u0000)")


def closest(word: str, choices, *, cutoff: float = 0.75, prefixes: bool = True) -> str | None:
    """The choice `word` most likely misspells, or None (as WireMock names the nearest stub): the
    same name in another case; with `prefixes`, the one name it begins (`card`, `card_number`) or
    that begins it; else difflib's closest above `cutoff`."""
    by_lower = {str(choice).lower(): str(choice) for choice in choices}
    lowered = word.lower()
    if lowered in by_lower:
        return by_lower[lowered]
    if prefixes and len(lowered) >= 3:
        around = [name for low, name in by_lower.items() if low.startswith(lowered) or lowered.startswith(low)]
        if len(around) == 1:
            return around[0]
    found = difflib.get_close_matches(lowered, by_lower, n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


def tolerate(field_name: str, deviation: str, *, strict: bool, warnings: list[str]) -> None:
    """What the real gateway lets pass: a warning for the journal, or a 406 under --strict."""
    if strict:
        raise GatewayError("lenient_rejected", field=field_name, deviation=deviation)
    warnings.append(f"{field_name}: {deviation}")


@dataclass
class Checked:
    """A request that passed: the repaired values, and what leniency had to repair."""

    values: dict
    warnings: list[str] = field(default_factory=list)


class Schemas:
    """Every schema of schemas/, by its path without `.json` (`requests/payments_request`)."""

    def __init__(self, root: Path):
        self.root = root
        self.documents: dict[str, dict] = {}
        for path in sorted(root.rglob("*.json")):
            name = path.relative_to(root).with_suffix("").as_posix()
            self.documents[name] = json.loads(path.read_text("utf-8"))
        self._validators = {
            name: Draft202012Validator(doc, format_checker=Draft202012Validator.FORMAT_CHECKER)
            for name, doc in self.documents.items()
        }
        # Lenient mode takes the lengths real traffic shows accepted (`x-accepted-maxLength`).
        self._lenient_validators = {
            name: Draft202012Validator(_accepted_lengths(doc), format_checker=Draft202012Validator.FORMAT_CHECKER)
            for name, doc in self.documents.items()
        }
        self._surely_valid = {name: _fast_check(doc) for name, doc in self.documents.items()}

    def errors(self, name: str, instance) -> list[str]:
        """Plain messages for what the emulator itself sends (tests check payloads with it)."""
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in self._validators[name].iter_errors(instance)]

    def check_request(self, name: str, data, *, strict: bool, endpoint: str,
                      from_query: bool = False) -> Checked:
        schema = self.documents[name]
        if not isinstance(data, dict):
            raise GatewayError("body_not_object", got=_json_type(data))
        fast = self._surely_valid[name]
        if fast is not None and fast(data):  # nothing to repair, nothing wrong
            return Checked(dict(data))
        repair = _Repair(schema, strict=strict, endpoint=endpoint)
        values = repair.query_names(data) if from_query else dict(data)
        values = repair.fields(values, from_query=from_query)
        validators = self._validators if strict else self._lenient_validators
        errors = _errors_in_order(validators[name], values, schema)
        if errors:
            raise _to_gateway_error(errors[0], schema, endpoint, missing=_missing(errors))
        refuse_nul(data)  # after the schema: a field's own rule on control characters speaks first
        return Checked(values, repair.warnings)


class _Repair:
    def __init__(self, schema: dict, *, strict: bool, endpoint: str):
        self.properties: dict = schema.get("properties", {})
        self.required = set(schema.get("required", ()))
        self.strict = strict
        self.endpoint = endpoint
        self.warnings: list[str] = []

    def deviate(self, field_name: str, deviation: str) -> None:
        tolerate(field_name, deviation, strict=self.strict, warnings=self.warnings)

    def query_names(self, data: dict) -> dict:
        by_lower = {name.lower(): name for name in self.properties}
        values = {}
        for key, value in data.items():
            name = by_lower.get(key.lower(), key)
            if name != key:
                self.deviate(name, f"query parameter written as {key!r}")
            values[name] = value
        return values

    def fields(self, values: dict, *, from_query: bool) -> dict:
        repaired = {}
        for key, value in values.items():
            spec = self.properties.get(key)
            if spec is None:
                if self.strict:
                    raise GatewayError("field_unknown", field=key, endpoint=self.endpoint,
                                       suggestion=closest(key, self.properties))
                self.warnings.append(f"{key}: not a parameter of {self.endpoint}, ignored")
                continue
            if value is None or value == "":
                if key in self.required:
                    continue  # reported as missing by the schema
                self.deviate(key, f"empty optional field sent as {json.dumps(value)}, treated as absent")
                continue
            repaired[key] = self.value(key, spec.get("type"), value, from_query)
        return repaired

    def value(self, key: str, kind, value, from_query: bool):
        if kind == "integer":
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and _WHOLE.match(value):
                if not from_query:  # query strings are text by nature, not a deviation
                    self.deviate(key, f"sent as a string ({value!r}), expected a number")
                return int(value)
        if kind == "string" and isinstance(value, int) and not isinstance(value, bool):
            self.deviate(key, f"sent as a number ({value}), expected a string")
            return str(value)
        if kind == "string" and isinstance(value, str) and not self.strict:
            self.length(key, value)
        return value

    def length(self, key: str, value: str) -> None:
        """Longer than the reference's size, as long as the real gateway was seen to accept: a
        warning (under --strict the reference's size stands, and the schema refuses it)."""
        spec = self.properties[key]
        size, accepted = spec.get("maxLength"), spec.get("x-accepted-maxLength")
        if accepted is not None and size < len(value) <= accepted:
            self.warnings.append(f"{key}: {len(value)} characters, longer than the reference's {size}; "
                                 f"the real test gateway accepted {accepted}")


def _accepted_lengths(schema: dict) -> dict:
    """`schema` with each property's maxLength raised to its `x-accepted-maxLength`, if any."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not any("x-accepted-maxLength" in p for p in properties.values()):
        return schema
    return {**schema, "properties": {
        name: {**spec, "maxLength": spec["x-accepted-maxLength"]} if "x-accepted-maxLength" in spec else spec
        for name, spec in properties.items()}}


_ANNOTATIONS = {"description", "title", "examples", "default", "$schema", "$id"}
_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}  # exact types
_FAST_KEYWORDS = {"type", "maxLength", "minLength", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum",
                  "exclusiveMaximum"}


def _fast_check(schema: dict):
    """A quick yes for a flat object schema's bodies that are valid as sent, with nothing for
    leniency to repair (most requests), or None when the schema uses anything else. It only
    ever says "surely valid": on a no, the body is repaired and jsonschema looks, so every
    error message is still jsonschema's reading of the schema."""
    keys = {k for k in schema if k not in _ANNOTATIONS and not k.startswith("x-")}
    if keys - {"type", "required", "properties", "additionalProperties"} or schema.get("type") != "object" \
            or schema.get("additionalProperties", True) is not False:
        return None
    checks = {}
    for name, spec in schema.get("properties", {}).items():
        rules = {k: v for k, v in spec.items() if k not in _ANNOTATIONS and not k.startswith("x-")}
        if set(rules) - _FAST_KEYWORDS or not isinstance(rules.get("type"), str) or rules["type"] not in _TYPES:
            return None
        checks[name] = _value_check(rules)
    required = tuple(schema.get("required", ()))

    def surely_valid(values: dict) -> bool:
        for name in required:
            if name not in values:
                return False
        for name, value in values.items():
            check = checks.get(name)
            if check is None or not check(value):
                return False
        return True

    return surely_valid


def _value_check(rules: dict):
    """One property's check, made once: the exact type (a bool is no integer, 1.0 and "1" are
    left to repair), its bounds, and never an empty string (repair treats it as absent)."""
    kind = _TYPES[rules["type"]]
    enum = rules.get("enum")
    if rules["type"] == "string":
        shortest, longest = max(1, rules.get("minLength", 0)), rules.get("maxLength", math.inf)
        search = re.compile(rules["pattern"]).search if "pattern" in rules else None
        return lambda value: (type(value) is str and shortest <= len(value) <= longest and "\x00" not in value
                              and (enum is None or value in enum) and (search is None or search(value) is not None))
    least, most = rules.get("minimum", -math.inf), rules.get("maximum", math.inf)
    above, below = rules.get("exclusiveMinimum", -math.inf), rules.get("exclusiveMaximum", math.inf)
    return lambda value: (type(value) in kind and least <= value <= most and above < value < below
                          and (enum is None or value in enum))


def _errors_in_order(validator: Draft202012Validator, values: dict, schema: dict) -> list[ValidationError]:
    """Every error, the one a reader expects first first: missing fields, then by the field's
    place in the schema, then by rule."""
    order = {name: i for i, name in enumerate(schema.get("properties", {}))}

    def rank(error: ValidationError):
        name = _field_of(error)
        return (error.validator != "required", order.get(name, len(order)), str(error.validator))

    return sorted(validator.iter_errors(values), key=rank)


def _is_missing(error: ValidationError) -> bool:
    return error.validator == "required" or (error.validator == "minLength" and error.instance == "")


def _missing(errors: list[ValidationError]) -> tuple[str, ...]:
    """Every field missing, in the schema's order: the gateway names the first, a reason all."""
    return tuple(dict.fromkeys(_field_of(error) for error in errors if _is_missing(error)))


def _field_of(error: ValidationError) -> str:
    if error.validator == "required":
        return re.match(r"'([^']+)'", error.message).group(1)
    if error.absolute_path:
        return ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        return re.search(r"'([^']+)'", error.message).group(1)
    return "body"


def _to_gateway_error(error: ValidationError, schema: dict, endpoint: str,
                      missing: tuple[str, ...] = ()) -> GatewayError:
    """The GatewayError of the first error; a missing field's carries every field missing
    (`missing`) and an unknown field's the name it may misspell (`suggestion`), for the reason."""
    name = _field_of(error)
    rule = error.validator
    spec = schema.get("properties", {}).get(name, {})
    override = spec.get("x-error", {}).get(rule)
    if override:
        return GatewayError(override, field=name)
    if _is_missing(error):
        return GatewayError("field_missing", field=name, missing=missing)
    if rule == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return GatewayError("field_type", field=name, expected=" or ".join(_EXPECTED.get(k, k) for k in kinds),
                            got=_show(error.instance))
    if rule == "maxLength":
        return GatewayError("field_too_long", field=name, limit=error.validator_value)
    if rule == "maximum":
        return GatewayError("field_too_large", field=name, limit=error.validator_value, got=error.instance)
    if rule == "minimum":
        return GatewayError("field_negative", field=name, got=error.instance)
    if rule == "additionalProperties":
        return GatewayError("field_unknown", field=name, endpoint=endpoint,
                            suggestion=closest(name, schema.get("properties", {})))
    if rule == "enum":
        return GatewayError("field_invalid", field=name,
                            rule="must be one of " + ", ".join(repr(v) for v in error.validator_value))
    if rule in ("pattern", "not", "const") and "x-rule" in spec:
        return GatewayError("field_invalid", field=name, rule=spec["x-rule"])
    if rule == "pattern":
        return GatewayError("field_invalid", field=name, rule=f"must match {error.validator_value}")
    if rule == "format":
        return GatewayError("field_invalid", field=name, rule=f"must be a valid {error.validator_value}")
    return GatewayError("field_invalid", field=name, rule=error.message)


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")
