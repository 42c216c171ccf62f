"""Usernames: the form that is stored and shown, and the key that makes them unique.

A username is stored NFKC-normalised, as given otherwise. Two usernames are the same
user when their keys are equal: NFKC, case-folded, NFKC again (case folding can undo
the normalisation, e.g. for some compatibility characters). So ``Admin``, ``ADMIN`` and
its full-width form (U+FF41 ...) all name ``admin``: one account, one login throttle key.
"""

from __future__ import annotations

import unicodedata


def normalise_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username)


def username_key(username: str) -> str:
    return unicodedata.normalize("NFKC", normalise_username(username).casefold())
