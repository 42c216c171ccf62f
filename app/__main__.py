"""``python -m app``: the command line (``app.cli``: ``--help``, ``--version``, ``serve``
as the default, ``users ...``, ``migrate ...``); serving is ``app.serving``.
"""

from __future__ import annotations

import os
import sys

from app import cli
from app.config import Config


def serve(config: Config) -> int:
    # Imported on the way to serving only: the app, Hypercorn, OpenTelemetry and what
    # they import take about 0.6 s of CPU, which `python -m app users list` (and every
    # other subcommand) does not need.
    from app import serving

    return serving.serve(config)


def main() -> int:
    return cli.main(sys.argv[1:], os.environ, serve)


if __name__ == "__main__":
    sys.exit(main())
