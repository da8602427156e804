"""The lenient reader takes what strict JSON takes, plus trailing commas, and never a comma in a string."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from payletter_emulator.engines.lenient_json import loads, trailing_commas

# Strings full of what a careless scanner would mistake for structure.
TRICKY = st.text(alphabet=st.sampled_from(list(',]}[{:"\\ \n\tab1') + ["\u00e9", "\u2028", "\ud55c"]), max_size=8)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TRICKY
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
                      max_leaves=20)
SPACE = st.sampled_from(["", " ", "\n", "\r\n  ", "\t"])


def dump(value, draw, counter: list[int]) -> str:
    """JSON text of `value`, with whitespace drawn and a trailing comma after some containers'
    last member (counted in `counter`)."""
    if isinstance(value, (list, dict)):
        if isinstance(value, list):
            members = [draw(SPACE) + dump(v, draw, counter) + draw(SPACE) for v in value]
        else:
            members = [draw(SPACE) + json.dumps(k) + draw(SPACE) + ":" + draw(SPACE) + dump(v, draw, counter)
                       + draw(SPACE) for k, v in value.items()]
        text = ",".join(members)
        if members and draw(st.booleans()):
            text += "," + draw(SPACE)
            counter[0] += 1
        return ("[" if isinstance(value, list) else "{") + text + ("]" if isinstance(value, list) else "}")
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@given(VALUES)
def test_strict_json_reads_as_json_does_with_no_deviation(value):
    reading = loads(json.dumps(value))
    assert reading.value == value and reading.deviations == []


@given(VALUES, st.data())
def test_each_trailing_comma_is_tolerated_and_reported_once(value, data):
    counter = [0]
    text = dump(value, data.draw, counter)
    reading = loads(text)
    assert reading.value == value
    assert len(reading.deviations) == counter[0]
    assert len(trailing_commas(text)) == counter[0]


@given(st.text(max_size=30))
def test_whatever_it_reads_is_the_text_without_the_commas_it_names(text):
    """Any text at all: a success is exactly json.loads of the text with those commas blanked."""
    try:
        reading = loads(text)
    except json.JSONDecodeError:
        return
    commas = trailing_commas(text) if reading.deviations else []
    assert all(text[at] == "," for at in commas)
    blanked = "".join(" " if at in commas else char for at, char in enumerate(text))
    assert json.dumps(reading.value) == json.dumps(json.loads(blanked))  # NaN is no equal of itself


@given(TRICKY)
def test_commas_inside_strings_are_never_touched(inner):
    text = json.dumps({"product_name": inner + ",}", "tags": [inner + ",]"]})
    assert trailing_commas(text) == []
    assert loads(text).value == {"product_name": inner + ",}", "tags": [inner + ",]"]}


@pytest.mark.parametrize("text", ["[,]", "{,}", "[1,,]", '{"a":1,,}', '{"a",:1}', '{"a":,}', ",", "[1],",
                                  '{"a":1}, ]', "[1 2,]"])
def test_anything_else_malformed_stays_malformed(text):
    with pytest.raises(json.JSONDecodeError):
        loads(text)


def test_the_deviation_says_where_the_comma_is():
    assert loads('{\n  "amount": "1000",\n}').deviations == ["trailing comma before } at line 2 column 19"]
