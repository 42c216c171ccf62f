"""What a command-line module registers its subcommands on (``app.cli`` hands each one the
``add_subparsers()`` of ``python -m app``): typed by the one call they make, as argparse
names that object's class only privately."""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class Subcommands(Protocol):
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...
