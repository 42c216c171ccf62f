"""Issue #8 item 7: wrong passwords for ``admin`` cannot keep the real admin out.

What holds (SOVD_LOGIN_MAX_FAILURES = N, per SOVD_LOGIN_WINDOW_S):
- an address gets at most N failed verifications; then 429 whatever it sends;
- a username gets at most N failed verifications from anywhere; after that only addresses
  with no failure in the window may still try it, at most N more failed verifications in
  all (2N per username per window, however many addresses guess);
- an address the username logged in from with the right password (a known address, the
  admin's own desk) may always try within its own address limit: a typo there costs one
  of that address's N, never a lockout by someone else;
- so the right password from a new address that has not failed is refused only if more
  than N other addresses each failed on that username within the same window.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from app.config import Config
from tests.support.harness import ADMIN_PASSWORD, make_config, running
from tests.support.login_helpers import Clock, count_verifications, logins, statuses

pytestmark = pytest.mark.socket

ATTACKER = "203.0.113.66"
ADMIN_DESK = "10.20.0.5"


def _config(tmp_path: Path, **overrides: Any) -> Config:
    return make_config(
        tmp_path,
        trusted_proxies=(ip_network("127.0.0.1/32"),),
        password_hash_profile="fast",
        **overrides,
    )


def test_an_attacker_at_full_speed_cannot_keep_the_admin_out(tmp_path: Path) -> None:
    clock = Clock()
    with running(_config(tmp_path), clock=clock) as srv:
        hasher = count_verifications(srv)
        for window in range(3):
            # 60 guesses at once for admin under three spellings (one key), and the real
            # admin logging in from their desk in the middle of it.
            guesses = [
                (name, f"guess-{window}-{n}", ATTACKER)
                for n, name in enumerate(["admin", "Admin", "ADMIN"] * 20)
            ]
            attempts = [*guesses[:30], ("admin", ADMIN_PASSWORD, ADMIN_DESK), *guesses[30:]]
            responses = logins(srv, attempts)
            admin = responses[30]
            assert admin.status_code == 200, admin.text
            attack = statuses(responses[:30] + responses[31:])
            assert attack.get(401, 0) <= 5 and attack.get(200, 0) == 0, attack
            assert attack[429] >= 55
            # Right after the burst, with the username over its limit: the admin still gets in.
            again = logins(srv, [("Admin", ADMIN_PASSWORD, ADMIN_DESK)])[0]
            assert again.status_code == 200, again.text
            # The attacker's address, even with the right password, is refused.
            assert logins(srv, [("admin", ADMIN_PASSWORD, ATTACKER)])[0].status_code == 429
            clock.now += 60
        # Per window: at most five of the attacker's guesses were checked, plus the admin's two.
        assert hasher.started <= 3 * (5 + 2)


def test_a_username_gets_at_most_twice_the_limit_of_failures_however_many_addresses(
    tmp_path: Path,
) -> None:
    clock = Clock()
    # Enough checks at once for 30 addresses, so that none is turned away with a 503.
    with running(_config(tmp_path, login_max_concurrent=64), clock=clock) as srv:
        hasher = count_verifications(srv)
        # 30 addresses guessing admin twice each, all at once.
        guesses = [("admin", f"guess-{n}", f"198.51.100.{n}") for n in range(30) for _ in (1, 2)]
        assert statuses(logins(srv, guesses)) == {401: 10, 429: 50}
        assert hasher.started == 10
        # The documented limit of the guarantee: more than five fresh addresses failed on
        # admin in this window, so the admin from a new desk (never logged in from before)
        # waits for the window's end.
        refused = logins(srv, [("admin", ADMIN_PASSWORD, ADMIN_DESK)])[0]
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        clock.now += 60
        assert logins(srv, [("admin", ADMIN_PASSWORD, ADMIN_DESK)])[0].status_code == 200


def test_an_address_that_failed_cannot_use_the_clean_address_allowance(tmp_path: Path) -> None:
    clock = Clock()
    with running(_config(tmp_path), clock=clock) as srv:
        assert statuses(logins(srv, [("admin", "guess", ATTACKER)] * 5)) == {401: 5}
        # One failure from the admin's own desk (a typo): it is no longer a clean address.
        assert logins(srv, [("admin", "typo", ADMIN_DESK)])[0].status_code == 401
        clock.now += 10
        refused = logins(srv, [("admin", ADMIN_PASSWORD, ADMIN_DESK)])[0]
        # It may try again when the attacker's first failure leaves the window (t+60).
        assert refused.status_code == 429 and refused.headers["retry-after"] == "50"
        clock.now += 50
        assert logins(srv, [("admin", ADMIN_PASSWORD, ADMIN_DESK)])[0].status_code == 200


def test_many_addresses_cannot_lock_the_admin_out_of_a_desk_they_logged_in_from(
    tmp_path: Path,
) -> None:
    # Found in review: six or more guessing addresses used to shut the admin out entirely.
    clock = Clock()
    with running(_config(tmp_path, login_max_concurrent=64), clock=clock) as srv:
        assert logins(srv, [("admin", ADMIN_PASSWORD, ADMIN_DESK)])[0].status_code == 200
        clock.now += 3600  # an hour later, under attack from 30 addresses, every window
        for _ in range(3):
            guesses = [("admin", f"g{n}", f"198.51.100.{n}") for n in range(30) for _ in (1, 2)]
            assert statuses(logins(srv, guesses)) == {401: 10, 429: 50}
            # A desk admin never used is refused for the username's sake...
            assert logins(srv, [("admin", ADMIN_PASSWORD, "10.20.0.99")])[0].status_code == 429
            # ...the desk admin logged in from is not, typo included.
            assert logins(srv, [("admin", "typo", ADMIN_DESK)])[0].status_code == 401
            assert logins(srv, [("Admin", ADMIN_PASSWORD, ADMIN_DESK)])[0].status_code == 200
            clock.now += 60


def test_a_known_address_is_still_held_to_its_own_limit(tmp_path: Path) -> None:
    clock = Clock()
    with running(_config(tmp_path), clock=clock) as srv:
        hasher = count_verifications(srv)
        assert logins(srv, [("admin", ADMIN_PASSWORD, ADMIN_DESK)])[0].status_code == 200
        # Whoever sits at a known desk still gets five wrong guesses a window, no more.
        tries = logins(srv, [("admin", f"guess-{n}", ADMIN_DESK) for n in range(20)])
        assert statuses(tries) == {401: 5, 429: 15}
        assert hasher.started == 1 + 5
        refused = logins(srv, [("admin", ADMIN_PASSWORD, ADMIN_DESK)])[0]
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
