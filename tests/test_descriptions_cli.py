"""``python -m app descriptions add|list|remove`` (issue #20 item 1): the API's checks on
the same files, while the service is stopped; refused while it runs (the lock is held)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app import cli
from app.config import Config
from app.datadir import DataDirLock
from tests.test_descriptions import LAUGHS, pdx, zip_of

pytestmark = pytest.mark.fast


def _no_serving(config: Config) -> int:
    raise AssertionError("must not serve")


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    env = {"SOVD_DB_PATH": str(tmp_path / "data" / "sovd.db"), "SOVD_PDX_MAX_ENTRIES": "20"}
    code = cli.main(list(argv), env, _no_serving)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = tmp_path / "engine.pdx"
    engine.write_bytes(pdx("ENGINE"))
    code, out, err = run(tmp_path, capsys, "descriptions", "add", str(engine))
    assert code == 0, err
    assert "added engine.pdx" in out and "ENGINE" in out
    stored = tmp_path / "data" / "descriptions" / "engine.pdx"
    assert stored.read_bytes() == engine.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600

    code, out, _ = run(tmp_path, capsys, "descriptions", "list")
    assert code == 0 and "engine.pdx" in out and "ENGINE" in out

    # Same ECU in another file: refused, as the API refuses it.
    again = tmp_path / "engine2.pdx"
    again.write_bytes(pdx("ENGINE", dids=2))
    code, _, err = run(tmp_path, capsys, "descriptions", "add", str(again))
    assert code == 1 and "already provided by engine.pdx" in err and "nothing changed" in err
    code, _, err = run(tmp_path, capsys, "descriptions", "add", str(engine))
    assert code == 1 and "exists" in err

    code, out, _ = run(tmp_path, capsys, "descriptions", "remove", "engine.pdx")
    assert code == 0 and "removed engine.pdx" in out
    assert not stored.exists()
    code, _, err = run(tmp_path, capsys, "descriptions", "remove", "engine.pdx")
    assert code == 1 and "no description named" in err


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("text.pdx", b"hello", "not a zip archive"),
        ("laughs.pdx", zip_of({"index.xml": LAUGHS}), "declares an XML entity"),
        ("many.pdx", zip_of({f"f{i}": b"" for i in range(30)}), "SOVD_PDX_MAX_ENTRIES (20)"),
        ("escape.pdx", zip_of({"index.xml": b"<a/>", "../x": b""}), "'..'"),
        ("engine.zip", b"", "not a file name"),
    ],
)
def test_bad_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    code, _, err = run(tmp_path, capsys, "descriptions", "add", str(path))
    assert code == 1 and words in err, err
    directory = tmp_path / "data" / "descriptions"
    assert not directory.exists() or not any(directory.glob("*.pdx"))


def test_refused_while_the_service_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = tmp_path / "engine.pdx"
    engine.write_bytes(pdx("ENGINE"))
    lock = DataDirLock(tmp_path / "data")
    lock.acquire()  # as the running service holds it
    try:
        code, _, err = run(tmp_path, capsys, "descriptions", "add", str(engine))
        assert code == 1
        assert "stop the service or use the API (POST /api/v1/descriptions" in err
        code, out, _ = run(tmp_path, capsys, "descriptions", "list")  # reads only
        assert code == 0 and "0 description(s)" in out
    finally:
        lock.release()
