"""Instructions per request by setting, counted by valgrind: blind to the machine's load.

    python -m bench.tracing_instructions [--modes off,on,ratio_10] [--requests 256,1280]

On the shared 2-core machine other sessions' work moves requests/s and even CPU time per
request by 20-50 % between runs of one setting; the number of instructions a request
executes does not move. Each setting runs ``GET /api/v1/vehicles`` in process (as
``bench.tracing_split``: direct ASGI calls, the access log to a file) under
``valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes``, one process per
setting: counting is switched on (``callgrind_control``) after the warm-up, the counts
are dumped after a first stretch of requests and a flush of the span processor, and
counting is switched off after a second, longer stretch and its flush, so the
per-request figure is the slope between the two stretches (``--requests``), of the main
thread plus the span exporter's thread (other threads are start-up work, such as
imports, running on in the background). The trace ids are seeded before each stretch,
so both sample the same requests at 10 %.

Instructions are no CPU time (an instruction of a cache-missing path costs more), and
in process there is no HTTP server, whose own work dilutes every ratio over HTTP:
compare settings and checkouts here, and bars with ``python -m bench tracing``.
Needs valgrind (``apt-get install valgrind``); about a minute per setting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.http_overhead import span_receiver
from bench.tracing_split import MODES, call, service_app, signed_in


def _control(*command: str) -> None:
    # Blocks in waitpid: valgrind's gdbserver takes the command meanwhile.
    subprocess.run(
        ["callgrind_control", *command, str(os.getpid())], capture_output=True, check=True
    )


def _child(mode: str, stretches: tuple[int, int], warm_up: int, traces_url: str) -> None:
    app, password = service_app(mode, traces_url, "sovd-instructions-")

    async def run() -> None:
        async with app.router.lifespan_context(app):
            headers = await signed_in(app, password)
            for _ in range(warm_up):
                await call(app, "GET", headers, b"")
            provider: Any = getattr(app.state.tracing, "provider", None)
            if provider is not None:
                provider.force_flush()
            _control("-i", "on")
            # Each stretch ends alike (a flush, then a control call whose start is
            # counted) and the next begins alike (the end of a control call): the ends
            # cancel out in the slope.
            for n, requests in enumerate(stretches):
                random.seed(24)  # the SDK draws trace ids from random: the same each time
                for _ in range(requests):
                    await call(app, "GET", headers, b"")
                if provider is not None:
                    provider.force_flush()  # the export of these requests' spans, counted
                if n == 0:
                    _control("-d")  # the first stretch's counts to a file, and zeroed
                else:
                    _control("-i", "off")

    asyncio.run(run())


def _count(
    mode: str, stretches: tuple[int, int], warm_up: int, traces_url: str, out: Path
) -> tuple[int, int]:
    """The instructions counted in each stretch: the dump's file, then the exit's."""
    env = os.environ | {
        "SOVD_PASSWORD_HASH_PROFILE": "fast",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
        "PYTHONHASHSEED": "0",
        # Spans leave in full batches (512) and at the closing flush, as under load: the
        # processor's 5 s timer would fire many times in a run slowed down by valgrind,
        # each time posting a handful of spans.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }
    prefix = out / mode
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={prefix}.%p",
            sys.executable,
            "-m",
            "bench.tracing_instructions",
            "--child",
            mode,
            "--requests",
            ",".join(map(str, stretches)),
            "--warm-up",
            str(warm_up),
            "--traces-url",
            traces_url,
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    totals = [0, 0]
    # <mode>.<pid>.1-<thread>: the dump after the first stretch; <mode>.<pid>-<thread>:
    # the exit's, with what was counted since.
    for path in out.glob(f"{mode}.*-*"):
        name = re.fullmatch(rf"{re.escape(mode)}\.\d+(\.1)?-(\d+)", path.name)
        assert name, f"an unexpected callgrind file {path.name}"
        counted = int(re.search(r"^totals: (\d+)", path.read_text(), re.M).group(1))  # type: ignore[union-attr]
        thread = int(name.group(2))
        # The main thread, and the span exporter's (started before the service's
        # threads; it counts a few instructions only when there are spans).
        if thread == 1 or (thread == 2 and mode != "off" and mode != "on"):
            totals[0 if name.group(1) else 1] += counted
    assert all(totals), f"{mode}: no count for a stretch ({totals}): did callgrind_control work?"
    return totals[0], totals[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--modes", default="off,on,ratio_10")
    parser.add_argument("--requests", default="256,1280", help="two stretches' lengths")
    # Fewer only for a smoke run (the tests): the first requests fill caches, and a
    # count switched on before they are done is no steady request's.
    parser.add_argument("--warm-up", type=int, default=300, help="requests before counting")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--traces-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    short, long = (int(n) for n in args.requests.split(","))
    if args.child:
        _child(args.child, (short, long), args.warm_up, args.traces_url)
        return 0
    modes = args.modes.split(",")
    with (
        tempfile.TemporaryDirectory() as tmp,
        span_receiver(None) as receiver,
        ThreadPoolExecutor(2) as pool,
    ):
        counts = dict(
            zip(
                modes,
                pool.map(
                    lambda mode: _count(mode, (short, long), args.warm_up, receiver.url, Path(tmp)),
                    modes,
                ),
                strict=True,
            )
        )
    per_request = {m: (counts[m][1] - counts[m][0]) / (long - short) for m in modes}
    base = per_request.get("off")
    for mode in modes:
        extra = f"   +{per_request[mode] - base:,.0f} over off" if base and mode != "off" else ""
        print(f"{mode:<10} {per_request[mode]:>12,.0f} instructions per request{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
