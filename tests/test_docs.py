"""The README fits on a screen and every docs page is reachable from it; every relative
link (and #anchor) in README.md and docs/*.md leads somewhere; docs/configuration.md is
what ``python -m app.config_docs`` prints today."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import config_docs
from app.config import Config, ConfigError

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MAX_README_LINES = 250
QUICK_START = """```sh
make run    # serves http://127.0.0.1:8000/ (the console) on ./data/sovd.db with a demo fleet
make test   # runs the whole test suite
```"""

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text outside fenced code blocks and code spans (where a link is no link)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text())):
        base = slug(heading)
        name, n = base, 0
        while name in found:  # a repeated heading gets -1, -2, ...
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def links(path: Path) -> list[str]:
    return _LINK.findall(_prose(path.read_text()))


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)


def test_the_readme_fits_on_a_screen() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, len(lines)


def test_the_quick_start_is_the_two_commands() -> None:
    assert QUICK_START in README.read_text()


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / t.partition("#")[0]).resolve()
        for t in links(README)
        if _relative(t) and t.partition("#")[0]
    }
    assert PAGES, "docs/*.md is empty"
    unlinked = [p.name for p in PAGES if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_docs_page_first_says_who_it_is_for(page: Path) -> None:
    first, _, rest = page.read_text().partition("\n")
    assert first.startswith("For "), f"{page.name} starts with {first!r}"
    assert rest.startswith("\n"), f"{page.name}: one line, then a blank line"


@pytest.mark.parametrize("source", [README, *PAGES], ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(source: Path) -> None:
    broken = []
    for target in links(source):
        if not _relative(target):
            continue
        path, _, anchor = target.partition("#")
        file = (source.parent / path).resolve() if path else source
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, f"{source.name}: {broken}"


def test_the_link_checker_sees_broken_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "For testing.\n\n# Title\n\n## Step one: `run` it\n\n"
        "[ok](#step-one-run-it) [bad](#nope) [file](missing.md)\n"
        "`[not a link](nowhere.md)`\n\n```\n[nor](this.md)\n# not a heading\n```\n"
    )
    assert links(page) == ["#step-one-run-it", "#nope", "missing.md"]
    assert anchors(page) == {"title", "step-one-run-it"}


def test_the_configuration_page_is_fresh() -> None:
    checked_in = (DOCS / "configuration.md").read_text()
    assert checked_in == config_docs.render(), (
        "docs/configuration.md is stale: .venv/bin/python -m app.config_docs"
        " > docs/configuration.md"
    )


@pytest.mark.socket
def test_the_generator_command_prints_the_page() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.config_docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == config_docs.render()


def test_every_variable_config_reads_is_on_the_page() -> None:
    read = config_docs.variables_read()
    page = (DOCS / "configuration.md").read_text()
    assert "SOVD_PORT" in read and "OTEL_TRACES_SAMPLER" in read
    assert len(read) == len(set(read)) >= 60
    missing = [name for name in read if f"| `{name}` |" not in page]
    assert not missing


def _row(name: str) -> list[str]:
    page = (DOCS / "configuration.md").read_text()
    line = next(li for li in page.splitlines() if li.startswith(f"| `{name}` |"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_the_page_states_what_config_py_declares() -> None:
    # Defaults are the Config fields', limits the messages from_env gives.
    assert _row("SOVD_PORT")[1:3] == [f"`{Config.port}`", "a number from 0 to 65535"]
    assert _row("SOVD_SESSION_MAX_AGE_S")[1] == "`2592000` (30 d)"
    assert _row("SOVD_PDX_MAX_BYTES")[1] == "`33554432` (32 MiB)"
    assert _row("SOVD_DB_PATH")[1] == "`./data/sovd.db`"
    assert _row("SOVD_JWT_SECRET")[2] == "at least 32 bytes long; a secret, never shown"
    assert _row("SOVD_METRICS_TOKEN")[2].endswith("; a secret, never shown")
    assert "secret" not in _row("SOVD_HOST")[2]
    with pytest.raises(ConfigError, match="from 0 to 65535"):
        Config.from_env({"SOVD_PORT": "65536"})


def test_the_generator_refuses_a_variable_without_its_meaning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, *rest = config_docs.SECTIONS
    dropped = first.variables[0].name
    without = (dataclasses.replace(first, variables=first.variables[1:]), *rest)
    monkeypatch.setattr(config_docs, "SECTIONS", without)
    with pytest.raises(LookupError, match=f"undocumented \\['{dropped}'\\]"):
        config_docs.render()
