"""The pytest plugin's `payletter_global`, as a merchant's suite meets it: generated test files run
by pytest in a subprocess (the plugin through its entry point, as after `pip install`), the docs'
examples as they are."""
from __future__ import annotations

import pytest

from .conftest import ONLY_OUR_PLUGIN
from .doc_blocks import doc_block

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *ONLY_OUR_PLUGIN, "--payletter-no-coverage", *args)


def test_the_docs_global_example_runs(pytester):
    pytester.makepyfile(test_docs_global=doc_block("pytest-global-example").text)
    run(pytester).assert_outcomes(passed=1)


def test_the_global_page_example_runs(pytester):
    pytester.makepyfile(test_global_page=doc_block("global-hosted-form-example").text)
    run(pytester).assert_outcomes(passed=1)


STORES = '''
import requests

seen = []


def test_one(payletter_global):
    seen.append((payletter_global.store_id, payletter_global.key))
    answer = requests.post(payletter_global.page_url, data=payletter_global.hosted_form(
        storeorderno="ONE", payamt="1.00", returnurl="https://shop.example/r"))
    assert answer.status_code == 200, answer.text
    [payment] = payletter_global.payments()
    assert payment["order_no"] == "ONE" and payment["status"] == "requested"
    declined = payletter_global.approve(payment["token"], card_number="6011000990139424")
    assert declined["status"] == "declined" and payletter_global.notifications() == []


def test_two(payletter_global):
    seen.append((payletter_global.store_id, payletter_global.key))
    assert payletter_global.payments() == []
'''


@pytest.mark.parametrize("isolation", ["sandbox", "reset"])
def test_each_test_has_a_clean_global_store_of_its_own_sandbox_or_the_built_in_one(pytester, isolation):
    pytester.makepyfile(STORES + f'''

def test_the_stores_seen():
    if "{isolation}" == "reset":
        assert seen == [("global_test", "global_test")] * 2
    else:
        assert len(set(seen)) == 2 and all(len(key) == 32 for _, key in seen)
''')
    run(pytester, f"--payletter-isolation={isolation}", "-p", "no:randomly").assert_outcomes(passed=3)
