"""Each setting is declared once (emulator/config.py): `serve`'s options, their variables, the
checks of `Settings`, the drive commands' defaults and docs/configuration.md's table are made from it, and a
bad value, from an option or a variable, is refused in one line, never with a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import click
import pytest

from payletter_emulator.client import drive_options
from payletter_emulator.client.cli import serve
from payletter_emulator.client.docgen import configuration_table
from payletter_emulator.config import ENV_PREFIX, PAY_TEST, SETTINGS, Settings

ROOT = Path(__file__).resolve().parent.parent
COMMAND = str(Path(sys.executable).parent / "payletter-emulator")  # the console script users run


def clean_env(**variables: str) -> dict[str, str]:
    """This environment without the caller's PAYLETTER_EMULATOR_* settings, with `variables`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    return {**env, **{ENV_PREFIX + name: value for name, value in variables.items()}}


@pytest.fixture
def no_settings_in_env(monkeypatch):
    for key in [key for key in os.environ if key.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    return monkeypatch


def parsed(*arguments: str) -> dict:
    """What `serve` would be called with: its options read from `arguments` and the environment."""
    return serve.make_context("serve", list(arguments)).params


def run(*arguments: str, cwd: Path | None = None, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *arguments], env=clean_env(**variables), cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def options() -> dict[str, click.Option]:
    return {param.name: param for param in serve.params if isinstance(param, click.Option)}


# --- one declaration, and what is made from it ----------------------------------------------------

def test_every_field_of_settings_is_declared_with_its_variable():
    assert list(SETTINGS) == [f.name for f in fields(Settings)]
    defaults = Settings()
    for setting in SETTINGS.values():
        assert setting.variable == ENV_PREFIX + setting.name.upper()
        assert getattr(defaults, setting.name) == setting.default


def test_serve_has_one_option_per_declared_setting_and_no_other():
    assert set(options()) == {s.name for s in SETTINGS.values() if s.option}
    for setting in SETTINGS.values():
        if not setting.option:
            continue
        option = options()[setting.name]
        assert option.opts == [setting.option] and option.secondary_opts == ([setting.off] if setting.off else [])
        assert option.envvar == setting.variable
        assert option.default == setting.default
        assert option.multiple == setting.many


def test_serve_help_shows_each_option_with_its_variable_default_and_bound(no_settings_in_env):
    done = run("serve", "--help")
    assert done.returncode == 0, done.stderr
    shown = "".join(done.stdout.split())  # click wraps the lines (and breaks words at hyphens)
    context = click.Context(serve, info_name="serve")
    for setting in SETTINGS.values():
        if not setting.option:
            # The environment-only ones are told after the options.
            assert "".join(f"{setting.variable} (environment only; {setting.value_name}): {setting.help}"
                           .split()) in shown
            continue
        flags, text = options()[setting.name].get_help_record(context)
        assert setting.help in text and f"env var: {setting.variable}" in text
        if setting.shown_default:
            assert f"default: ({setting.shown_default})" in text
        else:  # a flag's default is the flag in effect, as click writes it: `lenient`, `no-tls`
            assert f"default: {setting.default_text.lstrip('-')}" in text
        assert setting.bound in text
        assert "".join(f"{flags} {text}".split()) in shown, setting.name


def test_the_configuration_page_is_made_from_the_declarations():
    page = (ROOT / "docs" / "configuration.md").read_text("utf-8")
    start = page.index("| option |")
    table = page[start:page.index("\n\n", start) + 1]
    expected = configuration_table()
    assert table == expected, f"docs/configuration.md's table differs from emulator/config.py; it is:\n{expected}"
    for setting in SETTINGS.values():
        assert f"`{setting.variable}`" in table


def test_the_drive_commands_take_the_servers_declarations():
    assert drive_options.TOKEN_VARIABLE == SETTINGS["control_token"].variable
    # Without a variable, the server they drive is the one `serve` starts by default.
    assert drive_options.default_url({}) == f"http://{SETTINGS['host'].default}:{SETTINGS['port'].default}"
    assert drive_options.default_url({ENV_PREFIX + "PORT": "9001", ENV_PREFIX + "TLS": "on"}) \
        == f"https://{SETTINGS['host'].default}:9001"


# --- an option and its variable read alike ----------------------------------------------------------

@pytest.mark.parametrize("name,text,value", [
    ("port", "0", 0), ("port", "65535", 65535), ("workers", "1", 1), ("callback_timeout", "0.1", 0.1),
    ("callback_interval", "0", 0.0), ("journal_limit", "100", 100), ("strict", " TRUE ", True),
    ("control", "off", False), ("callback_hosts", "a.example, ,b.example", ("a.example", "b.example")),
    ("faker_seed", "-7", -7),
])
def test_a_value_reads_the_same_from_the_variable_for_serve_and_for_from_env(no_settings_in_env, name, text, value):
    setting = SETTINGS[name]
    no_settings_in_env.setenv(setting.variable, text)
    assert parsed()[name] == value
    assert getattr(Settings.from_env({setting.variable: text}), name) == value


@pytest.mark.parametrize("name,text,value", [
    ("port", "65535", 65535), ("workers", "3", 3), ("callback_timeout", "0.5", 0.5), ("seed", "9", 9),
])
def test_an_option_in_bounds_is_read_and_wins_over_its_variable(no_settings_in_env, name, text, value):
    setting = next(s for s in SETTINGS.values() if s.option == f"--{name.replace('_', '-')}")
    no_settings_in_env.setenv(setting.variable, str(setting.low if setting.low is not None else 1))
    assert parsed(setting.option, text)[setting.name] == value


def test_flags_and_repeated_options():
    params = parsed("--lenient", "--no-control", "--callback-host", "a.example", "--callback-host", "b.example")
    assert (params["strict"], params["control"], params["callback_hosts"]) == (False, False,
                                                                                ("a.example", "b.example"))


def test_an_empty_variable_is_unset(no_settings_in_env):
    for setting in SETTINGS.values():
        no_settings_in_env.setenv(setting.variable, "")
    assert Settings.from_env({s.variable: "" for s in SETTINGS.values()}) == Settings()
    params = parsed()
    assert {name: params[name] for name in params} == {name: getattr(Settings(), name) for name in params}


def test_settings_made_in_python_are_held_to_the_same_bounds():
    with pytest.raises(ValueError, match=r"^workers must be at least 1, not 0$"):
        Settings(workers=0)
    with pytest.raises(ValueError, match=r"^port must be from 0 to 65535, not 70000$"):
        Settings(port=70000)
    with pytest.raises(ValueError, match=r"^callback_timeout must be a finite number"):
        Settings(callback_timeout=float("nan"))
    assert Settings(workers=None, port=0, callback_interval=0).port == 0
    assert Settings.from_env({ENV_PREFIX + "CLIENTS": "shop:pk:sk"}).clients[0] == PAY_TEST


# --- a bad value: one line naming it, exit status 2, no traceback -----------------------------------

BAD = [  # (option, value, the rule's words)
    ("--workers", "-1", "must be at least 1"),
    ("--workers", "0", "must be at least 1"),
    ("--port", "70000", "must be from 0 to 65535"),
    ("--port", "-1", "must be from 0 to 65535"),
    ("--callback-timeout", "0", "must be at least 0.1"),
    ("--callback-interval", "inf", "is not a number (seconds)"),
    ("--callback-retries", "-1", "must be at least 0"),
    ("--callback-concurrency", "0", "must be at least 1"),
    ("--journal-limit", "99", "must be at least 100"),
    ("--callback-limit", "5", "must be at least 100"),
    ("--seed", "seven", "is not an integer"),
    ("--tls-cert", "no-such.pem", "is not a file"),
]


def refusal(done: subprocess.CompletedProcess, status: int = 2) -> str:
    """The one line a refused command says; its exit status: 2 for an option (a usage mistake),
    1 for an environment variable (a refusal to start)."""
    assert done.returncode == status, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    return line


@pytest.mark.parametrize("option,value,rule", BAD)
def test_a_bad_option_is_refused_in_one_line(tmp_path, option, value, rule):
    line = refusal(run("serve", "--db", ":memory:", option, value, cwd=tmp_path))
    assert f"'{option}'" in line and f"'{value}' {rule}" in line


@pytest.mark.parametrize("option,value,rule", BAD)
def test_a_bad_variable_is_refused_in_one_line(tmp_path, option, value, rule):
    setting = next(s for s in SETTINGS.values() if s.option == option)
    line = refusal(run("serve", "--db", ":memory:", cwd=tmp_path, **{setting.name.upper(): value}), 1)
    assert line == f"Error: {setting.variable}='{value}' {rule}"


def test_the_drive_commands_refuse_a_bad_variable_alike(tmp_path):
    line = refusal(run("health", cwd=tmp_path, WORKERS="-1"), 1)
    assert line == f"Error: {ENV_PREFIX}WORKERS='-1' must be at least 1"
