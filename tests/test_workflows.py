"""The GitHub workflows, read as data (no GitHub here): CI runs .ci/run; a tag `v*` tests, builds
the wheel and the sdist, pushes the image to the registry the repository names and publishes to PyPI."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads a bare `on` as true
    return document


def runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def uses(job: dict, action: str) -> dict:
    [step] = [step for step in job["steps"] if step.get("uses", "").split("@")[0] == action]
    return step


def test_ci_runs_the_projects_ci_script_on_debian():
    ci = workflow("ci.yml")
    [job] = ci["jobs"].values()
    assert runs(job) == [".ci/run"] and (ROOT / ".ci" / "run").stat().st_mode & 0o111
    assert "bookworm" in job["container"]  # .ci/run installs Debian's packages as root
    assert set(ci["on"]) >= {"push", "pull_request"}


def test_a_version_tag_tests_builds_pushes_the_image_and_publishes():
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    jobs = release["jobs"]
    assert runs(jobs["test"]) == [".ci/run"]

    # The wheel and the sdist, once the suite passed, from a tag that is the package's version.
    assert jobs["build"]["needs"] == "test"
    assert "python -m build" in runs(jobs["build"])
    assert any("pyproject.toml" in command and "GITHUB_REF_NAME" in command for command in runs(jobs["build"]))
    assert uses(jobs["build"], "actions/upload-artifact")["with"]["path"] == "dist/"

    # The image, from the Dockerfile at the root, to <registry>/<owner>/payletter-emulator.
    image = jobs["image"]
    assert image["needs"] == "test" and image["permissions"]["packages"] == "write"
    assert uses(image, "docker/login-action")["with"]["registry"] == "${{ vars.IMAGE_REGISTRY }}"
    assert uses(image, "docker/metadata-action")["with"]["images"] == \
        "${{ vars.IMAGE_REGISTRY }}/${{ github.repository_owner }}/payletter-emulator"
    pushed = uses(image, "docker/build-push-action")["with"]
    assert pushed["push"] is True and pushed["context"] == "." and "steps.meta.outputs.tags" in pushed["tags"]
    assert (ROOT / pushed["context"] / "Dockerfile").is_file()

    # PyPI by trusted publishing: an OIDC token, no password, and only after the image is out.
    publish = jobs["publish"]
    assert set(publish["needs"]) == {"build", "image"}
    assert publish["permissions"] == {"id-token": "write"} and publish["environment"] == "pypi"
    assert uses(publish, "actions/download-artifact")["with"]["path"] == "dist/"
    assert "with" not in uses(publish, "pypa/gh-action-pypi-publish")
    # Every job but the image's reads the repository only.
    assert release["permissions"] == {"contents": "read"}


def test_the_workflows_pin_their_actions_to_a_version():
    for path in WORKFLOWS.glob("*.yml"):
        for job in workflow(path.name)["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    action, _, version = step["uses"].partition("@")
                    assert version, f"{path.name}: {action} has no version"
                if "run" in step:  # what the runner's bash would read
                    checked = subprocess.run(["bash", "-n", "-c", step["run"]], capture_output=True, text=True)
                    assert checked.returncode == 0, f"{path.name}: {step['run']}: {checked.stderr}"
