"""How a configuration variable is declared: a dataclass field that carries its ``Setting``
(the variable's name, parser and meaning), written with ``var`` (or ``computed``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

T = TypeVar("T")

SETTING: Final = "setting"  # the key of a Config field's metadata that holds its Setting


@dataclass(frozen=True, slots=True)
class Setting:
    """What a Config field is read from and what it means (the generated page shows it)."""

    name: str  # the environment variable
    meaning: str
    parse: Callable[[str], Any]
    # The title of the page's section that starts with this variable.
    section: str | None = None
    secret: bool = False  # a bad value is named, never shown
    # Another variable read when this one is unset (the OpenTelemetry SDK's order).
    fallback: str | None = None
    fallback_meaning: str = ""
    default_note: str = ""  # said after the default (e.g. what `make run` sets instead)
    default_text: str | None = None  # instead of a default computed on the machine


def var(
    name: str,
    default: T,
    parse: Callable[[str], T],
    meaning: str,
    *,
    section: str | None = None,
    secret: bool = False,
    fallback: str | None = None,
    fallback_meaning: str = "",
    default_note: str = "",
    default_text: str | None = None,
) -> T:
    """A Config field read from the variable ``name`` by ``parse`` (unset: ``default``)."""
    setting = Setting(
        name,
        meaning,
        parse,
        section,
        secret,
        fallback,
        fallback_meaning,
        default_note,
        default_text,
    )
    return field(default=default, metadata={SETTING: setting})


def computed(
    name: str, default: Callable[[], T], parse: Callable[[str], T], meaning: str, **how: Any
) -> T:
    """A ``var`` whose default is computed where the service runs (``default_text`` says how)."""
    value: T = field(
        default_factory=default, metadata={SETTING: Setting(name, meaning, parse, **how)}
    )
    return value
