"""Issue #19 item 4: one username rule for the API, the command line and start-up seeding.

Before: ``"admin\\n"`` passed the API's pattern (``$`` matches before a trailing newline)
and showed as ``admin``; ``python -m app users create`` checked nothing (empty, 300
characters, HTML, ANSI escapes, ``admin\\u200b``, Cyrillic ``\\u0430dmin``, all created
and able to log in), and ``users list`` printed them raw. Now the rule is
``app.usernames.check_username`` (NFKC, a full match, the length cap, no look-alike of
an existing user); rows already stored that break it are reported by
``python -m app users check`` and warned about at start, never changed.
"""

from __future__ import annotations

import ast
import io
import signal
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
from argon2 import PasswordHasher

import app.usernames
from app import cli
from app.usernames import (
    UsernameError,
    UsernameTaken,
    check_username,
    nonconforming,
    shown,
    skeleton,
    username_key,
)
from tests.support.harness import ADMIN_PASSWORD, Server, auth
from tests.support.process import Process, run_app, server_env

pytestmark = pytest.mark.fast

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
ESC = "\x1b"

# Every one of these was accepted by the API or the command line before.
BAD_FORMS = {
    "trailing-newline": "admin\n",
    "newline-new-name": "carol\n",
    "zero-width-space": "admin\u200b",
    "cyrillic-a": "\u0430dmin",
    "empty": "",
    "too-long": "a" * 300,
    "html": "<b>carol</b>",
    "ansi": f"{ESC}[31mcarol{ESC}[0m",
    "two-letters": "ab",
}
# Look-alikes of the two seeded users and of ``mary`` (created by the test).
LOOKALIKES = {"adm1n": "admin", "ADMlN": "admin", "eng1neer": "engineer", "rnary": "mary"}


# -- the rule itself ----------------------------------------------------------------------


def test_the_rule_module_imports_nothing_of_the_app() -> None:
    tree = ast.parse(Path(app.usernames.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= {"__future__", "re", "unicodedata", "collections", "typing"}


@pytest.mark.parametrize("name", BAD_FORMS.values(), ids=BAD_FORMS.keys())
def test_the_rule_refuses_each_bad_form(name: str) -> None:
    with pytest.raises(UsernameError) as caught:
        check_username(name)
    assert ESC not in str(caught.value) and "\n" not in str(caught.value)


def test_the_rule_normalises_and_finds_lookalikes() -> None:
    assert check_username("\uff43\uff41\uff52\uff4f\uff4c") == "carol"  # full-width
    assert check_username("John.Doe_2", ["mary"]) == "John.Doe_2"
    for name, existing in LOOKALIKES.items():
        with pytest.raises(UsernameTaken) as caught:
            check_username(name, ["someone", existing])
        assert caught.value.existing == existing
        assert f"looks like the existing user {existing}" in str(caught.value)
    with pytest.raises(UsernameTaken, match="already taken"):
        check_username("ADMIN", ["admin"])
    assert skeleton("john.doe") == skeleton("John_Doe") == skeleton("john-d0e")
    assert skeleton("vvill") == skeleton("will") and skeleton("clave") == skeleton("dave")
    assert skeleton("mark") != skeleton("marc") and skeleton("alice") != skeleton("alicia")


def test_names_are_shown_escaped() -> None:
    assert shown("admin") == "admin"
    assert shown(f"{ESC}[31mx") == "'\\x1b[31mx'"
    assert shown("\u0430dmin") == "'\\u0430dmin'"
    assert shown("admin\n") == "'admin\\n'"


def test_stored_rows_are_reported_the_younger_of_a_lookalike_pair() -> None:
    rows = [("1", "admin"), ("2", "mary"), ("3", "rnary"), ("4", "admin\n"), ("5", "ok-user")]
    assert [(u, why.split(" ")[0]) for u, _, why in nonconforming(rows)] == [
        ("3", "looks"),
        ("4", "must"),
    ]


# -- the API ------------------------------------------------------------------------------


def _create(server: Server, token: str, username: str) -> tuple[int, dict[str, object]]:
    r = server.http.post(
        "/api/v1/users",
        headers=auth(token),
        json={"username": username, "password": "a-good-password-1", "role": "admin"},
    )
    return r.status_code, r.json()


@pytest.mark.parametrize("name", BAD_FORMS.values(), ids=BAD_FORMS.keys())
def test_the_api_refuses_each_bad_form(shared_server: Server, name: str) -> None:
    status, body = _create(shared_server, shared_server.admin_token(), name)
    assert status == 400, body
    assert body["error_code"] == "incomplete-request"
    assert str(body["message"]).startswith("body.username")
    assert shared_server.query("SELECT count(*) FROM users") == [(2,)]


def test_the_api_refuses_lookalikes_naming_the_user_they_resemble(server: Server) -> None:
    admin = server.admin_token()
    assert _create(server, admin, "mary")[0] == 201
    for name, existing in LOOKALIKES.items():
        status, body = _create(server, admin, name)
        assert status == 409, (name, body)
        assert body["error_code"] == "conflict"
        assert body["message"] == (
            f"username {name} looks like the existing user {existing}; choose another"
        )
        assert "a-good-password-1" not in str(body)
    assert server.query("SELECT count(*) FROM users") == [(3,)]
    # A name that merely shares letters is fine, and full-width is stored as ASCII.
    assert _create(server, admin, "marys")[0] == 201
    status, body = _create(server, admin, "\uff43\uff41\uff52\uff4f\uff4c")
    assert status == 201 and body["username"] == "carol"


def test_login_with_an_odd_name_fails_as_a_wrong_password_does(server: Server) -> None:
    def login(username: str, password: str) -> tuple[int, object]:
        r = server.http.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        return r.status_code, r.json()["message"]

    wrong = login("admin", "not-the-password")
    assert wrong[0] == 401
    # Four more: five failures from one address is the throttle's limit.
    for odd in ("admin\u200b", "\u0430dmin", "admin\n", "adm1n"):
        assert login(odd, ADMIN_PASSWORD) == wrong, odd


# -- the command line and start-up (real processes) ---------------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    return server_env(tmp_path, SOVD_PASSWORD_HASH_PROFILE="fast")


def _insert(db: Path, *names: str) -> None:
    """Rows as the old command line could leave them (it checked nothing)."""
    with sqlite3.connect(db) as conn:
        for n, name in enumerate(names):
            conn.execute(
                "INSERT INTO users (user_id, username, username_key, password_hash, role,"
                " disabled, created_at) VALUES (?, ?, ?, ?, 'engineer', 0, ?)",
                (
                    str(uuid.uuid4()),
                    name,
                    username_key(name),
                    FAST.hash("old-password-1"),
                    f"2030-01-01T00:00:0{n}.000000+00:00",
                ),
            )


def _no_serving(config: object) -> int:
    raise AssertionError("a users command must not start the service")


@pytest.mark.socket  # real `python -m app` processes
def test_the_command_line_refuses_what_the_api_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _env(tmp_path)
    Process(env).stop(signal.SIGTERM)  # creates the database with admin and engineer
    assert run_app(env, "users", "create", "mary", stdin="mary-password-1\n").returncode == 0
    # The real process for one attack; every other one through the same entry point
    # (``app.cli.main``) in this process, which spares a dozen interpreter starts.
    ansi = run_app(env, "users", "create", BAD_FORMS["ansi"], stdin="a-good-password-1\n")
    assert ansi.returncode == 1 and ansi.stderr.startswith("error: ") and ESC not in ansi.stderr
    refused = {**BAD_FORMS, **{f"lookalike-{k}": k for k in LOOKALIKES}}
    for what, name in refused.items():
        monkeypatch.setattr(sys, "stdin", io.StringIO("a-good-password-1\n"))
        code = cli.main(["users", "create", name], env, _no_serving)
        out, err = capsys.readouterr()
        assert code == 1, (what, out)
        assert err.startswith("error: "), (what, err)
        assert ESC not in err and "\u0430" not in err, what
        if what.startswith("lookalike-"):
            assert f"looks like the existing user {LOOKALIKES[name]}" in err
    listed = run_app(env, "users", "list")
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()[1:]) == [
        "admin",
        "engineer",
        "mary",
    ]


@pytest.mark.socket
def test_stored_names_that_break_the_rule_are_reported_never_changed(tmp_path: Path) -> None:
    env = _env(tmp_path)
    Process(env).stop(signal.SIGTERM)
    db = tmp_path / "data" / "sovd.db"
    clean = run_app(env, "users", "check")
    assert clean.returncode == 0 and "all 2 usernames keep the rule" in clean.stdout
    bad = ("admin\n", f"{ESC}[31mevil{ESC}[0m", "\u0430dmin", "adm1n", "<b>x</b>")
    _insert(db, *bad, "fine.user")

    listed = run_app(env, "users", "list")
    assert listed.returncode == 0 and ESC not in listed.stdout
    assert "'\\x1b[31mevil\\x1b[0m'" in listed.stdout and "'\\u0430dmin'" in listed.stdout

    checked = run_app(env, "users", "check")
    assert checked.returncode == 1
    assert ESC not in checked.stdout and "\u0430" not in checked.stdout
    reported = checked.stdout.splitlines()[:-1]
    assert [line.split(" (user ")[0] for line in reported] == [shown(n) for n in bad]
    assert "adm1n (user" in checked.stdout and "looks like the older user admin" in checked.stdout
    assert "5 of 8 usernames break the rule" in checked.stdout

    proc = Process(env)  # holds the data directory's lock
    try:
        warnings = [r for r in proc.log_records() if r.get("event") == "username_nonconforming"]
        assert [w["level"] for w in warnings] == ["warning"] * len(bad)
        for warning, name in zip(warnings, bad, strict=True):
            assert f"username {shown(name)} (user " in warning["message"]
            assert ESC not in warning["message"]
        # users check only reads: it works while the service runs.
        while_running = run_app(env, "users", "check")
        assert while_running.returncode == 1 and while_running.stdout == checked.stdout
        # Nothing was changed: the odd rows still log in as before.
        r = proc.http.post(
            "/api/v1/auth/login", json={"username": "adm1n", "password": "old-password-1"}
        )
        assert r.status_code == 200
    finally:
        proc.stop(signal.SIGTERM)
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT username FROM users")}
    assert set(bad) <= stored
