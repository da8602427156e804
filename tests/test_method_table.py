"""The method table (domain/payment_methods.toml): a row is the whole method, its rules, its page's
inputs and its labels, and a row that leaves out a part the pages need is refused when loaded."""
from __future__ import annotations

import tomllib

import pytest

from payletter_emulator.domain.methods import Label, _row, labels, table
from payletter_emulator.engines import checkout

ROW = '''
name = "New Pay"
label = { ko = "뉴페이", en = "New Pay" }
window = "D+180"
minimum = 100
inputs = ["option"]
app_step = true

[options.newcard]
label = { ko = "뉴페이 (카드)", en = "New Pay (card)" }

[options.newcash]
label = { ko = "뉴페이 (캐시)", en = "New Pay (cash)" }
window = "D+30"
'''


def test_one_row_declares_a_method_with_its_page_and_its_labels():
    method = _row("newpay", tomllib.loads(ROW))
    assert method.label == Label("뉴페이", "New Pay")
    assert (method.inputs, method.app_step, method.in_app_return) == (("option",), True, False)
    assert [(o.pgcode, o.window, o.label.en) for o in method.options] == [
        ("newcard", "D+180", "New Pay (card)"), ("newcash", "D+30", "New Pay (cash)")]


@pytest.mark.parametrize("change,refusal", [
    (lambda raw: raw.pop("label"), "newpay's label needs exactly ko, en"),
    (lambda raw: raw["label"].pop("en"), "newpay's label needs exactly ko, en"),
    (lambda raw: raw["options"]["newcash"].pop("label"), "newcash's label needs exactly ko, en"),
    (lambda raw: raw.pop("options"), "newpay's `option` input and its options go together"),
    (lambda raw: raw.update(inputs=[]), "newpay's `option` input and its options go together"),
])
def test_a_row_missing_what_the_pages_need_is_refused(change, refusal):
    raw = tomllib.loads(ROW)
    change(raw)
    with pytest.raises(ValueError, match=refusal):
        _row("newpay", raw)


def test_every_row_names_its_method_and_options_in_both_languages_and_asks_for_known_inputs():
    for lang in ("ko", "en"):
        names = labels(lang)
        assert set(table()) | {o.pgcode for m in table().values() for o in m.options} == set(names)
        assert all(names.values())
    assert checkout.pages() is table()
    assert {name for m in table().values() for name in m.inputs} <= set(checkout.INPUT_RULES)
