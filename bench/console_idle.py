"""What one open console page costs while nobody touches it (issue #21 item 3).

    flock /tmp/bench.lock .venv/bin/python -m bench.console_idle [seconds per page]

Starts the real service (``python -m app``, fresh database, the demo fleet), opens the
console in Debian's Chromium (headless, Playwright), signs in and leaves each page open
for the given time (60 s by default): the fleet, and the healthy simulated vehicle's
page. Per page and per minute it prints the requests the page made, the bytes they
moved (headers and bodies, both ways, as Chromium counts them), the service's CPU time
(its process, from /proc) and the page's own CPU time (Chromium's TaskDuration).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from playwright.sync_api import Page, Request, sync_playwright

from bench.server import ENGINEER_PASSWORD, BenchServer

CHROMIUM = "/usr/bin/chromium"
# Each page, and what shows it has loaded (its first requests are not idle cost).
PAGES = (
    ("fleet", "#/fleet", "table tbody tr"),
    ("vehicle", "#/vehicle/WVWZZZ1KZAW000001", ".ecu h3"),
)


def _task_seconds(session: Any) -> float:
    metrics = session.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def _idle(page: Page, server: BenchServer, seconds: float) -> dict[str, Any]:
    seen: list[Request] = []

    def finished(request: Request) -> None:
        seen.append(request)

    session = page.context.new_cdp_session(page)
    session.send("Performance.enable")
    page.on("requestfinished", finished)
    cpu0, task0, t0 = server.cpu_seconds(), _task_seconds(session), time.monotonic()
    page.wait_for_timeout(seconds * 1000)  # idle on purpose: this is what is measured
    cpu1, task1, t1 = server.cpu_seconds(), _task_seconds(session), time.monotonic()
    page.remove_listener("requestfinished", finished)
    moved = 0
    for request in seen:
        sizes = request.sizes()
        moved += (
            sizes["requestHeadersSize"]
            + sizes["requestBodySize"]
            + sizes["responseHeadersSize"]
            + sizes["responseBodySize"]
        )
    minutes = (t1 - t0) / 60
    paths = sorted({request.url.split("?")[0].split("/", 3)[-1] for request in seen})
    return {
        "paths": paths,
        "requests_per_min": len(seen) / minutes,
        "bytes_per_min": moved / minutes,
        "server_cpu_ms_per_min": (cpu1 - cpu0) * 1000 / minutes,
        "page_cpu_ms_per_min": (task1 - task0) * 1000 / minutes,
    }


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with BenchServer() as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(base_url=server.base_url, viewport={"width": 1280, "height": 800})
        page.goto("/")
        page.get_by_label("Username").fill("engineer")
        page.get_by_label("Password").fill(ENGINEER_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Sign out").wait_for()
        print(f"idle cost of one open console page, {seconds:.0f} s each")
        print(
            f"{'page':<10}{'requests/min':>14}{'bytes/min':>12}{'service CPU ms/min':>20}"
            f"{'page CPU ms/min':>17}"
        )
        for name, where, loaded in PAGES:
            page.goto(f"/{where}")
            page.locator(loaded).first.wait_for()
            page.wait_for_load_state("networkidle")
            figures = _idle(page, server, seconds)
            print(
                f"{name:<10}{figures['requests_per_min']:>14.1f}"
                f"{figures['bytes_per_min']:>12.0f}{figures['server_cpu_ms_per_min']:>20.1f}"
                f"{figures['page_cpu_ms_per_min']:>17.1f}   ({', '.join(figures['paths'])})"
            )
        browser.close()


if __name__ == "__main__":
    main()
