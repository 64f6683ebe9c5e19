"""The `cytolake` command and the jobs used carelessly: a lake path that is a file or names nothing, a table whose
protocol asks for a newer writer, query results with non-finite values and intervals as JSON, a reader that
closes the pipe early. Each ends with a clear message and its exit code; nothing in the lake changes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cytolake.cli import main as cytolake
from cytolake.lake import Lake

from conftest import ROOT, settings_at, versions, write_config


def run(conf, capsys, *args):
    """The command's exit code (returned, or raised as SystemExit like a bad config's) and what it printed."""
    try:
        rc = cytolake(["--config", str(conf), *args])
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out + out.err


def job(script: str, conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "jobs" / script), "--config", str(conf)],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def atlas_conf(atlas_lake, tmp_path_factory) -> Path:
    """A config whose lake is the session's atlas lake (`areas`, `pmaps`): only read here."""
    base = tmp_path_factory.mktemp("atlasconf")
    cfg = settings_at(base)
    cfg = cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"lake": atlas_lake})})
    return write_config(cfg, base / "conf.yaml")


@pytest.mark.parametrize("kind", ["a file", "missing"])
def test_a_lake_path_that_is_a_file_or_names_nothing_is_an_error_not_an_empty_lake(tmp_path, capsys, kind):
    cfg = settings_at(tmp_path)
    lake = cfg.paths.lake
    if kind == "a file":
        lake.write_text("not a lake\n")
    conf = write_config(cfg, tmp_path / "conf.yaml")
    for args in (["check"], ["tables"], ["sql", "SELECT 1 AS x"], ["maintain"]):
        rc, out = run(conf, capsys, *args)
        assert rc == 2 and str(lake) in out, (args, out)
        assert ("not a folder" in out) if kind == "a file" else ("no lake" in out), (args, out)
    assert lake.is_file() if kind == "a file" else not lake.exists()  # maintain made no empty lake there
    if kind == "a file":  # a writing job (a missing lake is a first run: ingest creates it)
        r = job("ingest.py", conf)
        assert r.returncode == 2 and "Traceback" not in r.stderr and str(lake) in r.stderr, r.stderr[-2000:]
        assert lake.read_text() == "not a lake\n"


def _lake_files(lake: Lake) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in lake.root.rglob("*") if p.is_file() and p.name != "_cytolake.lock"}


def test_a_table_asking_for_a_newer_writer_is_reported_and_no_writer_touches_the_lake(tiled_session, landing, tmp_path,
                                                                                       capsys):
    """`sections` upgraded by a newer Delta writer (a writer feature delta-rs does not know). On a copy of the
    tiled lake with the landing at another path, ingest has every section to rewrite: it must refuse before
    writing anything, as must maintain (whose compaction would leave an orphan file), naming the table."""
    cfg = settings_at(tmp_path, landing)
    shutil.copytree(tiled_session.paths.lake, cfg.paths.lake)
    lake = Lake(cfg.paths.lake)
    v = lake.version("sections") + 1
    (lake.path("sections") / "_delta_log" / f"{v:020d}.json").write_text(
        json.dumps({"commitInfo": {"timestamp": 1, "operation": "UPGRADE PROTOCOL"}}) + "\n"
        + json.dumps({"protocol": {"minReaderVersion": 1, "minWriterVersion": 7, "writerFeatures": ["futureFeature"]}})
        + "\n")
    conf = write_config(cfg, tmp_path / "conf.yaml")
    files, before = _lake_files(lake), versions(cfg)
    rc, out = run(conf, capsys, "check")
    assert rc == 1 and "table sections" in out and "writer version 7" in out and "futureFeature" in out, out
    rc, out = run(conf, capsys, "maintain", "--retention-days", "0")
    assert rc == 1 and "sections" in out and "Traceback" not in out, out
    r = job("ingest.py", conf)
    assert r.returncode == 1 and "sections" in r.stderr and "writer version 7" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "CommitFailedError" not in r.stderr
    from cytolake.lake.tables import TableNotWritable

    with pytest.raises(TableNotWritable, match="sections"):  # the library's own writers refuse too
        lake.ensure("sections")
    assert versions(cfg) == before and _lake_files(lake) == files  # nothing written, no orphan file
    rc, out = run(conf, capsys, "sql", "SELECT count(*) AS n FROM sections")  # readers still read it
    assert rc == 0 and "│ 6 │" in out, out


def _strict(text: str) -> list:
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_sql_json_is_strict_json(atlas_conf, capsys):
    q = ("SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, '-inf'::DOUBLE AS c, 1.5::DOUBLE AS d, "
         "[1.0, 'nan'::DOUBLE] AS l, {'x': 'inf'::DOUBLE} AS s, INTERVAL '1 month 2 days 3.5 seconds' AS i, "
         "INTERVAL '0 seconds' AS z")
    rc, out = run(atlas_conf, capsys, "sql", "--format", "json", q)
    assert rc == 0, out
    assert _strict(out) == [{"a": None, "b": None, "c": None, "d": 1.5, "l": [1.0, None], "s": {"x": None},
                             "i": "P1M2DT3.5S", "z": "PT0S"}]
    rc, out = run(atlas_conf, capsys, "sql", "--format", "csv", "SELECT INTERVAL '2 days' AS i, ['nan'::DOUBLE] AS l")
    assert rc == 0 and out.splitlines()[1] == "P2D,[null]", out


def test_a_reader_closing_the_pipe_ends_sql_quietly(atlas_conf):
    """`cytolake sql ... | head -1`: the reader goes away after one line; the query ends without a word, with the
    status a process killed by SIGPIPE reports (128 + 13), as other Unix tools do."""
    p = subprocess.Popen([sys.executable, "-m", "cytolake.cli", "--config", str(atlas_conf), "sql", "--format", "csv",
                          "SELECT * FROM pmaps"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    header = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=600)
    assert header.startswith(b"voxel_i,voxel_j"), header
    assert err == "" and rc == 141, (rc, err)
