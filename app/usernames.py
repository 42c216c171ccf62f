"""Usernames: the one rule for them, the form that is stored and shown, and the key that
makes them unique.

The rule (``check_username``), the same for the API, ``python -m app users create`` and
the accounts seeded at start: a username is NFKC-normalised and then must be, as a
whole string, 3 to 64 ASCII letters, digits, dots, dashes or underscores
(``USERNAME_RULE``). So ``"admin\\n"``, ``"admin\\u200b"``, Cyrillic ``"\\u0430dmin"``,
HTML, ANSI escapes and the empty name are refused; full-width ``alice``
(U+FF41 ...) becomes ``alice``.

Two usernames are the same user when their keys are equal: NFKC, case-folded, NFKC again
(case folding can undo the normalisation, e.g. for some compatibility characters). So
``Admin``, ``ADMIN`` and its full-width form (U+FF41 ...) all name ``admin``: one account,
one login throttle key.

A new name must also not *look like* an existing one (``lookalike``): equal
``skeleton``s. Unicode TR39 defines skeletons over all of Unicode; here the rule already
keeps names to 66 ASCII characters, so only the confusables among those matter, and the
skeleton maps just them (the TR39 ones that involve ASCII alone, plus separators):

- case: case-folded (as the key);
- ``0`` and ``o``; ``1``, ``l`` and ``i`` (``I`` folds to ``i``): TR39 maps ``0``/``O``
  and ``1``/``I``/``l`` together, and ``adm1n`` must not sit beside ``admin``;
- ``m`` and ``rn``, ``w`` and ``vv``, ``d`` and ``cl`` (TR39's multi-letter ones);
- ``.``, ``-`` and ``_``: not confusable glyphs, but ``john.doe`` beside ``john_doe`` is
  the same kind of impersonation.

Each character maps on its own (``m`` to ``rn``, never ``rn`` back to ``m``), so the
skeleton is well defined and equality needs no search. A library (e.g.
``confusable_homoglyphs``) would check scripts this rule never lets in; it is not used.

This module imports nothing of the app: the service, the store and the command line all
use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

USERNAME_MIN: Final = 3
USERNAME_MAX: Final = 64
USERNAME_RULE: Final = (
    f"{USERNAME_MIN} to {USERNAME_MAX} letters (A-Z, a-z), digits, dots, dashes or underscores"
)
# Checked with fullmatch: ``$`` in a search would also match before a trailing newline.
_ALLOWED: Final = re.compile(rf"[A-Za-z0-9._-]{{{USERNAME_MIN},{USERNAME_MAX}}}")
# Longer input is refused before it is normalised (NFKC can lengthen a string).
_RAW_MAX: Final = 4 * USERNAME_MAX

_SKELETON: Final = str.maketrans(
    {"0": "o", "1": "l", "i": "l", "m": "rn", "w": "vv", "d": "cl", "-": ".", "_": "."}
)


class UsernameError(ValueError):
    """A username the rule refuses; the message says why (any name in it escaped)."""


class UsernameTaken(UsernameError):
    """The name is an existing user's, or looks like it; ``existing`` is that user's name."""

    def __init__(self, name: str, existing: str) -> None:
        self.existing = existing
        if username_key(name) == username_key(existing):
            super().__init__(f"username {shown(name)} is already taken")
        else:
            super().__init__(
                f"username {shown(name)} looks like the existing user {shown(existing)};"
                " choose another"
            )


def normalise_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username)


def username_key(username: str) -> str:
    return unicodedata.normalize("NFKC", normalise_username(username).casefold())


def skeleton(name: str) -> str:
    """What ``name`` looks like (see the module's docstring): equal skeletons, names a
    reader can take for each other."""
    return normalise_username(name).casefold().translate(_SKELETON)


def shown(name: str) -> str:
    """``name`` as it may be printed or logged: as it is when it keeps the rule, else
    quoted with every non-ASCII or control character escaped (``'\\u0430dmin'``,
    ``'admin\\n'``, ``'\\x1b[31m'``): never a raw escape sequence, never a look-alike."""
    return name if _ALLOWED.fullmatch(name) else ascii(name)


def form_problem(name: str) -> str | None:
    """Why ``name``, as given, breaks the rule's form; None if it keeps it."""
    if len(name) > _RAW_MAX:
        return f"must be {USERNAME_RULE} (got {len(name)} characters)"
    if _ALLOWED.fullmatch(normalise_username(name)):
        return None
    return f"must be {USERNAME_RULE}; got {shown(name)}"


def lookalike(name: str, existing: Iterable[str]) -> str | None:
    """The first of ``existing`` that is ``name`` (equal keys) or looks like it (equal
    skeletons); None if none does."""
    key, look = username_key(name), skeleton(name)
    for other in existing:
        if username_key(other) == key or skeleton(other) == look:
            return other
    return None


def check_username(name: str, existing: Iterable[str] = ()) -> str:
    """The one rule: the normalised name to store, or ``UsernameError`` (the form is
    wrong) or ``UsernameTaken`` (it is, or looks like, one of ``existing``)."""
    problem = form_problem(name)
    if problem is not None:
        raise UsernameError(problem)
    normal = normalise_username(name)
    other = lookalike(normal, existing)
    if other is not None:
        raise UsernameTaken(normal, other)
    return normal


def nonconforming(names: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The stored names that break the rule: ``(user_id, username)`` pairs, oldest first,
    in; ``(user_id, username, why)`` out. A name fails for its form, or for looking like
    an older one (the older is the one kept). Only reports: nothing is changed."""
    failing: list[tuple[str, str, str]] = []
    seen: list[str] = []
    for user_id, name in names:
        problem = form_problem(name)
        if problem is None and normalise_username(name) != name:
            problem = f"is not NFKC-normalised (stored as {shown(name)})"
        if problem is None:
            other = lookalike(name, seen)
            if other is not None:
                problem = f"looks like the older user {shown(other)}"
        if problem is not None:
            failing.append((user_id, name, problem))
        seen.append(name)
    return failing
