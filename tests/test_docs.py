"""The docs cannot rot: generated pages match the tables, the README's example runs."""
from __future__ import annotations

import re
from pathlib import Path

from emulator import docgen

ROOT = Path(__file__).resolve().parent.parent


def test_generated_pages_are_up_to_date():
    for name, make in docgen.PAGES.items():
        assert (ROOT / "docs" / name).read_text("utf-8") == make(), f"run `payletter-emulator docs` ({name})"


def test_every_error_kind_is_documented_with_its_code():
    page = (ROOT / "docs" / "error-codes.md").read_text("utf-8")
    from emulator.errors import catalog
    for kind in catalog().values():
        assert f"| {kind.code} | `{kind.name}` |" in page


def readme_example(api, callback_receiver, marker: str) -> None:
    """Run the README's Python example that contains `marker` against the live emulator."""
    readme = (ROOT / "README.md").read_text("utf-8")
    [example] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if marker in block]
    example = example.replace("http://127.0.0.1:8080", api.url).replace(
        "https://merchant.example/callback", callback_receiver.url)
    exec(compile(example, "README.md", "exec"), {})


def test_readme_example_runs_against_a_live_emulator(api, callback_receiver):
    readme_example(api, callback_receiver, "# 5. Too late for a card payment")
    # The example's payment really happened: two cancellations, and its callbacks arrived.
    payments = api.control("/payments", method="GET")["payments"]
    assert [c["amount"] for c in payments[0]["cancellations"]] == [300, 700]
    api.flush()
    assert len(callback_receiver.received) == 2


def test_readme_callback_example_runs_against_a_live_emulator(api, callback_receiver):
    readme_example(api, callback_receiver, "given_up = notification()")
    [notification] = api.control("/callbacks", method="GET")["callbacks"]
    assert notification["url"] == "http://127.0.0.1:9/callback"
    assert notification["status"] == "failed"
    assert callback_receiver.received == []


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text("utf-8")
    quick = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_scenario_example_runs_against_a_live_emulator(api, callback_receiver):
    readme_example(api, callback_receiver, "decline-big-mobile-payments")
    assert api.control("/scenario", method="GET")["rules"] == []


def test_readme_sandbox_example_runs_against_a_live_emulator(api, callback_receiver):
    readme_example(api, callback_receiver, "this sandbox's scenario declined it")
    assert api.control("/sandboxes", method="GET")["sandboxes"] == []
