"""The docs cannot rot: generated pages match the tables, every code block of the README and
docs/*.md is run, checked or said not to be, and every relative link leads somewhere."""
from __future__ import annotations

import ast
import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from payletter_emulator.client import docgen, error_examples
from payletter_emulator.client.control_client import EmulatorClient
from payletter_emulator.config import ENV_PREFIX
from payletter_emulator.domain.errors import ErrorKind, catalog

from .conftest import EmulatorProcess, cli
from .doc_blocks import all_blocks, doc_block, pages, repository_url

ROOT = Path(__file__).resolve().parent.parent


def test_generated_pages_are_up_to_date():
    for name, make in docgen.PAGES.items():
        assert (ROOT / "docs" / name).read_text("utf-8") == make(), f"run `payletter-emulator docs` ({name})"


def test_every_error_kind_is_documented_with_its_code():
    page = (ROOT / "docs" / "error-codes.md").read_text("utf-8")
    for kind in catalog().values():
        if kind.example is not None:
            assert f"| {kind.code} | [`{kind.name}`](#{kind.name}) |" in page and f"\n### `{kind.name}`\n" in page
        else:
            assert f"| {kind.code} | `{kind.name}` |" in page and f"- `{kind.name}` ({kind.code}): " in page


# What no request provokes on purpose (error_codes.toml's `no_example` says why); every other kind
# shows a request that does. A kind added without either fails here and in the page's generation.
UNPROVOKED = {"internal", "callback_busy", "intercept_refused", "database_locked", "database_unreachable",
              "database_conflict", "scenario_too_large", "head_too_large"}


def test_every_kind_a_client_can_provoke_has_an_example():
    kinds = catalog()
    assert {name for name, kind in kinds.items() if kind.example is None} == UNPROVOKED
    assert all(kinds[name].no_example for name in UNPROVOKED)
    assert [kind.name for kind in error_examples.shown_kinds()] == [name for name in kinds if name not in UNPROVOKED]


def test_a_kind_with_neither_an_example_nor_a_reason_is_refused(monkeypatch):
    bare = ErrorKind(name="new_rule", code=4999, status=406, message="{field} breaks the new rule", meaning="")
    monkeypatch.setattr(error_examples, "catalog", lambda: {**catalog(), "new_rule": bare})
    with pytest.raises(error_examples.ExampleError, match="new_rule: declare the request that provokes it"):
        error_examples.shown_kinds()
    # A misspelt key would leave part of the request out without a word: it is refused too.
    misspelt = ErrorKind(name="new_rule", code=4999, status=406, message="", meaning="",
                         example={"request": "POST /v1.0/payments/request", "based_on": "payment request",
                                  "bdy": {"amount": 5}})
    monkeypatch.setattr(error_examples, "catalog", lambda: {**catalog(), "new_rule": misspelt})
    with pytest.raises(error_examples.ExampleError, match="new_rule: .* not bdy"):
        error_examples.shown_kinds()


@pytest.fixture(scope="module")
def served_answers(tmp_path_factory):
    """Every example sent to `payletter-emulator serve` on a port, one server for each set of settings
    the examples need (--strict, --control-token, --tls), none of the caller's PAYLETTER_EMULATOR_*."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    answers = {}
    for settings, kinds in error_examples.groups().items():
        process = EmulatorProcess(tmp_path_factory.mktemp("examples"), *error_examples.serve_args(settings),
                                  db=":memory:", environ=environ)
        try:
            client = EmulatorClient(process.url, control_token=dict(settings).get("control_token"),
                                    verify=process.ca or True)
            with contextlib.closing(client):
                answers.update(error_examples.run(client, kinds))
        finally:
            process.stop()
    return answers


def test_each_example_is_answered_with_its_kinds_status_and_code(served_answers):
    assert set(served_answers) == {kind.name for kind in error_examples.shown_kinds()}
    for name, exchange in served_answers.items():
        kind, answer = catalog()[name], exchange.answer
        assert answer.status == kind.status, (name, answer)
        if answer.is_page:  # a hosted page's error: HTML, its kind named on the page
            assert answer.page_error()[0] == name, (name, answer.page_error())
        else:
            assert answer.code() == kind.code, (name, answer.body)
            reason = answer.header("X-Emulator-Reason")
            assert reason is None or reason.startswith(f"{kind.code}: "), (name, reason)


def test_the_documented_error_example_answers_what_it_says(api):
    session = doc_block("error-example").text
    said = re.search(r"^# (.*)$", session, re.M).group(1)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", session.replace("http://127.0.0.1:8080", api.url)],
                          env=shell_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == said
    page = (ROOT / "docs" / "error-codes.md").read_text("utf-8")
    assert f"\n{said}\n```" in page.split("### `tid_unknown`")[1]  # the page's answer to the same request


def test_the_documented_error_row_is_the_catalogs():
    row = doc_block("error-row").text
    for name, declared in tomllib.loads(row).items():
        kind = catalog()[name]
        example = declared.pop("example")
        assert declared == {"code": kind.code, "status": kind.status, "message": kind.message, "meaning": kind.meaning}
        assert example == kind.example


def test_the_error_page_shows_what_a_served_emulator_answers(served_answers):
    """The examples on the page, made in process, are the answers of `payletter-emulator serve`."""
    page = (ROOT / "docs" / "error-codes.md").read_text("utf-8")
    assert page == docgen.error_codes(served_answers), "the page differs from a served emulator's answers"


def test_fidelity_lists_observed_behaviours_each_with_evidence_and_a_verdict():
    page = (ROOT / "docs" / "fidelity.md").read_text("utf-8")
    entries = re.split(r"\n### ", page)[1:]
    assert len(entries) >= 15
    for entry in entries:
        assert "- **Evidence:**" in entry and "- **Observed:**" in entry, entry[:80]
        verdict = re.search(r"- \*\*Emulator: ([^*]+)\*\*", entry)
        assert verdict and re.match(r"(matches|decided)", verdict.group(1)), entry[:80]
        # a commit is named as 40 hex digits, or the evidence is an issue thread
        assert re.search(r"`[0-9a-f]{40}`", entry) or "issue #" in entry, entry[:80]
    for page_name in ("README.md", "docs/decisions.md"):
        assert "fidelity.md" in (ROOT / page_name).read_text("utf-8"), page_name


def run_example(name: str, api, callback_receiver, namespace: dict | None = None) -> None:
    """Run the Python block `name` (README.md or docs/*.md) against the live emulator, with its
    merchant's callback endpoint the receiver's."""
    block = doc_block(name)
    example = block.text.replace("http://127.0.0.1:8080", api.url).replace(
        "https://merchant.example/callback", callback_receiver.url)
    exec(compile(example, block.page, "exec"), {} if namespace is None else namespace)


def test_the_payer_example_runs_against_a_live_emulator(api, callback_receiver):
    run_example("drive-a-payment", api, callback_receiver)
    # The example's payment really happened: two cancellations, and its callbacks arrived.
    payments = api.control("/payments", method="GET")["payments"]
    assert [c["amount"] for c in payments[0]["cancellations"]] == [300, 700]
    api.flush()
    assert len(callback_receiver.received) == 2


def test_the_callback_example_runs_against_a_live_emulator(api, callback_receiver):
    run_example("callback-retries", api, callback_receiver)
    [notification] = api.control("/callbacks", method="GET")["callbacks"]
    assert notification["url"] == "http://127.0.0.1:9/callback"
    assert notification["status"] == "failed"
    assert callback_receiver.received == []


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick = doc_block("quick-start")
    assert quick.page == "README.md"
    commands = [line.split("#")[0].strip() for line in quick.text.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_scenario_example_runs_against_a_live_emulator(api, callback_receiver):
    run_example("scenario-rule", api, callback_receiver)
    assert api.control("/scenario", method="GET")["rules"] == []


def test_the_sandbox_example_runs_against_a_live_emulator(api, callback_receiver):
    run_example("sandbox-example", api, callback_receiver)
    assert api.control("/sandboxes", method="GET")["sandboxes"] == []


# --- the command line and CI snippets ---------------------------------------------------------------

BIN = Path(sys.executable).parent


def shell_env(**extra: str) -> dict[str, str]:
    """This machine's environment, with the package's commands first on PATH and none of the
    caller's PAYLETTER_EMULATOR_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra}


def test_the_cli_session_runs_against_a_live_emulator(api, callback_receiver):
    session = doc_block("cli-session").text
    # The session's callback endpoint (`listen`) relays every callback to the receiver.
    script = session.replace("http://127.0.0.1:8080", api.url).replace(
        "listen --port 0", f"listen --port 0 --forward-to {callback_receiver.url}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=shell_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "Traceback" not in done.stderr
    payments = api.control("/payments", method="GET")["payments"]
    assert sorted(p["status"] for p in payments) == ["abandoned", "approved", "approved", "failed"]
    # The card's callback twice (delivered, then resent), the deposit's once; none for the others.
    approved = {p["pgcode"]: p["tid"] for p in payments if p["status"] == "approved"}
    received = Counter(c.json()["tid"] for c in callback_receiver.received)
    assert received == {approved["creditcard"]: 2, approved["virtualaccount"]: 1}
    assert api.control("/scenario", method="GET")["rules"] == []
    assert api.control("/sandboxes", method="GET")["sandboxes"] == []


def test_the_cli_session_shows_every_command():
    from payletter_emulator.client.cli import main

    session = doc_block("cli-session").text
    shown = set()
    for name, sub in re.findall(r"payletter-emulator ([a-z]+)(?: ([a-z]+))?", session):
        shown |= {name, f"{name} {sub}"}
    expected = set()
    for name, command in main.commands.items():
        # The server and the docs writer are described elsewhere; probe and capture speak to a
        # gateway, not to this session's emulator (docs/parity.md shows them).
        if name not in ("serve", "docs", "probe", "capture"):
            subcommands = set(getattr(command, "commands", {})) - ({"check"} if name == "scenario" else set())
            expected |= {f"{name} {sub}" for sub in subcommands} or {name}
    assert expected - shown == set()


def test_the_control_api_page_lists_every_operation():
    """docs/control-api.md's table names every control operation the emulator routes (Payletter
    Global's too), and none it does not."""
    import importlib

    from payletter_emulator.web.operations import OPERATIONS

    importlib.import_module("payletter_emulator.web.app")  # its blueprints register every operation

    def shape(path: str) -> str:
        return re.sub(r"[<{][^>}]+[>}]", "{}", path).rstrip("/")

    table = (ROOT / "docs" / "control-api.md").read_text("utf-8").split("## The operations", 1)[1]
    listed = {(method, shape(path)) for method, path in re.findall(r"`(GET|POST|PUT|DELETE) (/_emulator[^`]*)`", table)}
    routed = {(op.method, shape(op.path)) for op in OPERATIONS if op.path.startswith("/_emulator")}
    assert (routed - listed, listed - routed) == (set(), set())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_shop_checkout(tmp_path: Path) -> Path:
    """A checkout for a job's steps: examples/node-shop is the repository's; what a step writes
    (emulator.log) stays in the test's folder."""
    checkout = tmp_path / "checkout"
    (checkout / "examples").mkdir(parents=True)
    (checkout / "examples" / "node-shop").symlink_to(ROOT / "examples" / "node-shop")
    return checkout


def _steps(job: dict) -> list[dict]:
    return [step for step in job["steps"] if "run" in step]


def test_the_github_actions_job_runs_here(tmp_path, node):
    """The job's shell steps, run in order as the runner would (each its own bash, background
    processes living on), in a checkout whose examples/ is the repository's; `pip install` is the
    one step not run: this package is what it installs."""
    job = yaml.safe_load(doc_block("github-actions-job").text)["jobs"]["payments"]
    actions = {step["uses"].split("@")[0]: step.get("with", {}) for step in job["steps"] if "uses" in step}
    assert actions["actions/setup-python"]["python-version"] == "3.11"
    node_major = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    assert node_major.split(".")[0] == "v" + actions["actions/setup-node"]["node-version"]
    steps = _steps(job)
    assert steps[0]["run"] == f'pip install "payletter-emulator @ git+{repository_url()}"'

    checkout = node_shop_checkout(tmp_path)
    port = free_port()  # the job serves on 8080; here, a port of the test's, through the same variable
    # One shell for the whole job, so that the server started in the background outlives its step.
    script = ["trap 'kill $(jobs -p) 2>/dev/null' EXIT", "set -eo pipefail"]
    for step in steps[1:]:  # the failure step too: it must work when it is needed
        script += [f"cd {shlex.quote(str(checkout / step.get('working-directory', '.')))}", step["run"]]
    body = "\n".join(script)
    done = subprocess.run(["bash", "-c", body], env=shell_env(**{ENV_PREFIX + "PORT": str(port)}), cwd=checkout,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"^# pass 5$", done.stdout, re.M) and re.search(r"^# fail 0$", done.stdout, re.M), done.stdout
    assert f"listening on http://127.0.0.1:{port}" in (checkout / "emulator.log").read_text()


def test_the_service_container_job_runs_against_the_images_cmd(tmp_path, node):
    """No Docker engine here: the job is held to the image and the release by reading, and its steps
    run against the image's CMD run as a process with the service's environment (as
    tests/test_docker.py does), with what only Docker gives replaced: the mapped port, and the name
    host.docker.internal."""
    from .test_docker import Container

    pip_job = yaml.safe_load(doc_block("github-actions-job").text)
    job = yaml.safe_load(doc_block("service-container-job").text)["jobs"]["payments"]
    [service] = job["services"].values()
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    images = [step["with"]["images"] for step in release["jobs"]["image"]["steps"]
              if step.get("uses", "").startswith("docker/metadata-action")]
    assert images == [service["image"].replace("REGISTRY", "${{ vars.IMAGE_REGISTRY }}").replace("OWNER", "${{ github.repository_owner }}").removesuffix(":latest")]
    exposed = re.search(r"^EXPOSE (\d+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert service["ports"] == [f"{exposed}:{exposed}"]
    assert "HEALTHCHECK" in (ROOT / "Dockerfile").read_text()  # the runner waits for it
    assert job["env"][ENV_PREFIX + "URL"] == service["env"][ENV_PREFIX + "PUBLIC_URL"] == f"http://127.0.0.1:{exposed}"
    assert job["env"][ENV_PREFIX + "CONTROL_TOKEN"] == service["env"][ENV_PREFIX + "CONTROL_TOKEN"]
    # Callbacks reach the runner by a name the container knows, which the Node suite reads.
    assert "--add-host=host.docker.internal:host-gateway" in service["options"]
    assert job["env"]["SHOP_CALLBACK_HOST"] == "host.docker.internal"
    # The same commands as the job above: install, wait for health, the suite.
    steps, pip_steps = _steps(job), _steps(pip_job["jobs"]["payments"])
    assert steps[0] == pip_steps[0] and steps[-1] == pip_steps[-2]

    data = tmp_path / "data"
    data.mkdir()
    # The public URL is the address the request came to, the mapped port here.
    container = Container(data, {k: v for k, v in service["env"].items() if k != ENV_PREFIX + "PUBLIC_URL"})
    try:
        checkout = node_shop_checkout(tmp_path)
        env = {**job["env"], ENV_PREFIX + "URL": container.url, "SHOP_CALLBACK_HOST": "127.0.0.1"}
        for step in steps[1:]:
            done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], env=shell_env(**env),
                                  cwd=checkout / step.get("working-directory", "."), capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert re.search(r"^# pass 5$", done.stdout, re.M) and re.search(r"^# fail 0$", done.stdout, re.M), done.stdout
        # Without the token, the control API refuses: the job's token is what let the suite in.
        assert requests.get(container.url + "/_emulator/sandboxes", timeout=10).status_code == 401
    finally:
        container.stop()


def test_the_testcontainers_snippet_is_node_that_waits_for_the_health_check(tmp_path, node):
    snippet = doc_block("testcontainers").text
    script = tmp_path / "emulator.js"
    script.write_text(snippet)
    checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    [service] = yaml.safe_load(doc_block("service-container-job").text)["jobs"]["payments"]["services"].values()
    assert f"GenericContainer('{service['image']}')" in snippet
    assert ".withExposedPorts(8080)" in snippet and ".withWaitStrategy(Wait.forHealthCheck())" in snippet


def test_the_paging_example_runs_against_a_live_emulator(api, callback_receiver):
    tokens = [api.request_payment(order_no=f"page-{i}") for i in range(5)]
    namespace = {}
    run_example("paging-example", api, callback_receiver, namespace)
    assert [p["token"] for p in namespace["payments"]] == tokens  # three pages of two, all of them


# --- every block accounted for, every link leading somewhere ----------------------------------------

def _reads_block(module: Path, test: str, name: str) -> bool:
    """Whether `test` in `module` reads the block `name`: it calls doc_block("name"), or a helper of
    the module that calls doc_block, with the name as its first argument."""
    tree = ast.parse(module.read_text("utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

    def called(node) -> str:
        return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")

    helpers = {"doc_block"} | {name for name, node in functions.items()
                               if any(isinstance(call, ast.Call) and called(call) == "doc_block"
                                      for call in ast.walk(node))}
    return test in functions and any(
        isinstance(call, ast.Call) and called(call) in helpers and call.args
        and isinstance(call.args[0], ast.Constant) and call.args[0].value == name
        for call in ast.walk(functions[test]))


def test_every_block_of_the_readme_and_docs_is_run_checked_or_said_not_to_be():
    # The pages `payletter-emulator docs` writes are checked whole: each equals what the generator
    # makes (test_generated_pages_are_up_to_date), and error-codes.md's blocks are the answers a
    # served emulator gives (test_the_error_page_shows_what_a_served_emulator_answers).
    found = [block for block in all_blocks() if Path(block.page).name not in docgen.PAGES]
    assert len(found) >= 30
    unaccounted = [f"{b.page}:{b.line}" for b in found if b.name is None]
    assert unaccounted == [], ("a block without its line `<!-- block NAME: run by tests/FILE.py::TEST -->` "
                               "(or `checked by ...`, or `not run: why`) above it: " + ", ".join(unaccounted))
    names = Counter(b.name for b in found)
    assert [name for name, count in names.items() if count > 1] == []
    for block in found:
        where = f"{block.page}:{block.line} ({block.name})"
        if block.status == "not run:":
            assert len(block.by.split()) >= 3, f"{where}: say why it is not run"
            continue
        module, _, test = block.by.partition("::")
        assert module.startswith("tests/test_") and test.startswith("test_"), where
        assert (ROOT / module).exists(), f"{where}: no {module}"
        assert _reads_block(ROOT / module, test, block.name), \
            f'{where}: {block.by} does not read it (doc_block("{block.name}"))'


def test_the_block_check_sees_a_test_that_does_not_read_its_block(tmp_path):
    module = tmp_path / "test_x.py"
    module.write_text('from .doc_blocks import doc_block\n\n\ndef helper(name):\n    return doc_block(name).text\n\n\n'
                      'def test_a():\n    doc_block("one")\n\n\ndef test_b():\n    helper("two")\n\n\n'
                      'def test_c():\n    doc_block(NAME)\n')
    assert _reads_block(module, "test_a", "one") and _reads_block(module, "test_b", "two")
    assert not _reads_block(module, "test_a", "two") and not _reads_block(module, "test_c", "one")
    assert not _reads_block(module, "test_missing", "one")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces made hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def outside_blocks(text: str) -> list[str]:
    """The page's lines that are not inside a fenced code block."""
    kept, fence = [], None
    for line in text.splitlines():
        opening = re.match(r"^(`{3,})", line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.startswith(fence) and not line.strip("`").strip():
            fence = None
        elif fence is None:
            kept.append(line)
    return kept


def anchors(page: Path) -> set[str]:
    seen: Counter = Counter()
    found = set()
    for line in outside_blocks(page.read_text("utf-8")):
        if heading := re.match(r"^#{1,6} (.+?)\s*#*$", line):
            base = slug(heading.group(1))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def test_the_slug_is_githubs():
    assert slug("CI in any language: the command line") == "ci-in-any-language-the-command-line"
    assert slug("120. `serve` on werkzeug, `--workers` and the image on gunicorn") \
        == "120-serve-on-werkzeug---workers-and-the-image-on-gunicorn"
    assert slug("Test cards and the payer's choices") == "test-cards-and-the-payers-choices"


LINKED_PAGES = [*pages(), ROOT / "scenarios" / "README.md", *sorted((ROOT / "examples").glob("*/README.md"))]


def test_every_relative_link_leads_to_a_file_and_a_heading_there():
    broken = []
    for page in LINKED_PAGES:
        text = "\n".join(line for line in outside_blocks(page.read_text("utf-8")))
        text = re.sub(r"`[^`]*`", "", text)  # a link's form in inline code is not a link
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            name = f"{page.relative_to(ROOT)}: ({target})"
            if not where.exists():
                broken.append(f"{name}: no such file")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"{name}: no such heading")
    assert broken == []


def test_the_serving_refusal_is_what_serve_says(tmp_path):
    command, *said = doc_block("serve-refusal").text.splitlines()
    program, *args = shlex.split(command.removeprefix("$ "))
    assert program == "payletter-emulator"
    done = subprocess.run(cli(*args), capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**shell_env(), ENV_PREFIX + "PORT": "0"})  # the refusal comes before any port
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", said)


def test_the_folder_map_names_what_is_there():
    named = set()
    for line in doc_block("folder-map").text.splitlines():
        if entry := re.match(r"^( {0,2})([\w./-]+(?:/|\.py))(?=\s)", line):
            indent, name = entry.groups()
            named.add(("emulator/" if indent else "") + name)
    missing = [name for name in named if not (ROOT / name).exists()]
    assert missing == []
    folders = {f"emulator/{p.name}/" for p in (ROOT / "emulator").iterdir() if (p / "__init__.py").exists()}
    assert folders - named == set(), "a folder of emulator/ the map does not name"
