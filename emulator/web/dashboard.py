"""The dashboard (/_emulator/): one page that shows what the emulator holds and drives it. The
server sends a shell with the words of the page; static/dashboard.js reads and acts through the
control API alone, with URLs relative to the page, so a sandbox's dashboard is the same page
served under the sandbox's path. No merchant value is rendered here: the script puts them in
the page as text."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, make_response, redirect, render_template, request

from ..domain.errors import GatewayError
from . import control_api, pages
from .plumbing import emulator

blueprint = Blueprint("dashboard", __name__)
front = Blueprint("front", __name__)  # `/`, outside the dashboard's guard: the guard runs where it leads

LANGUAGES = ("en", "ko")
TOKEN_COOKIE = "payletter_emulator_control_token"
TOKEN_HEADER = "X-Emulator-Token"
POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
          "frame-ancestors 'none'; form-action 'none'")


def _given_token() -> str:
    """`?token=` once (then kept in a cookie), else the control API's header, else the cookie."""
    if "token" in request.args:
        return request.args["token"]
    return request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE, "")


@blueprint.before_request
def guard():
    """The control API's guard: off with --no-control, behind --control-token when given."""
    control_api.check_access(_given_token())


@blueprint.after_request
def headers(response):
    """Scripts and styles from the emulator only (the page shows merchant values); the page may
    carry the control token, so it is never cached nor sent on as a referrer."""
    response.headers.setdefault("Content-Security-Policy", POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _here(**query) -> str:
    """This page, relative to the browser's address (a sandbox's prefix included), always with
    the trailing slash the script's relative URLs need."""
    path = request.path
    target = "./" if path.endswith("/") else path.rsplit("/", 1)[-1] + "/"
    return target + ("?" + urlencode(query) if query else "")


@blueprint.get("/_emulator/")
def dashboard():
    args = {name: value for name, value in request.args.items() if name != "token"}
    if "token" in request.args:  # out of the address bar and the history, into a cookie
        response = redirect(_here(**args), 303)
        if emulator().settings.control_token is not None:
            response.set_cookie(TOKEN_COOKIE, request.args["token"], httponly=True, samesite="Strict",
                                secure=request.is_secure, path="/")
        return response
    if not request.path.endswith("/"):
        return redirect(_here(**args), 308)
    lang = args.get("lang", LANGUAGES[0]).lower()
    lang = lang if lang in LANGUAGES else LANGUAGES[0]
    other = LANGUAGES[1 - LANGUAGES.index(lang)]
    t = pages.texts("dashboard_text.toml")[lang]
    words = {**t, "methods": pages.texts()[lang]["methods"]}
    token = emulator().settings.control_token or ""
    html = render_template("dashboard.html", t=t, lang=lang, words=words, token=token,
                           switch_url="?" + urlencode({**args, "lang": other}))
    return make_response(html)


@front.get("/")
def front_door():
    """`/` (a sandbox's too) leads to the dashboard, the query (a `?token=`) kept; with the
    control API off there is nothing to lead to: the gateway's 404."""
    if not emulator().settings.control:
        raise GatewayError("not_found", path=request.path)
    query = request.query_string.decode("latin-1")
    return redirect(f"{request.script_root}/_emulator/" + (f"?{query}" if query else ""), 302)
