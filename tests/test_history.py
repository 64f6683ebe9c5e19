"""Delta time travel through `cytolake history` and `cytolake sql --version / --as-of`, on a real lake with a
real later commit, checked against delta-rs's own time travel (`DeltaTable(path, version=N)`,
`load_as_version`)."""

import datetime as dt
import json

import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from cytolake.cli import main
from cytolake.lake import Lake

from conftest import write_config

Q = "SELECT brain_id, section_id, status FROM sections ORDER BY brain_id, section_id"


def _json(capsys, *argv) -> tuple[int, list[dict], str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def _rows(table) -> list[dict]:
    t = table.select(["brain_id", "section_id", "status"]).sort_by([("brain_id", "ascending"), ("section_id", "ascending")])
    return t.to_pylist()


def test_sql_reads_a_table_at_a_version_or_a_time_as_delta_rs_does(tiled_copy, tmp_path, capsys):
    conf = str(write_config(tiled_copy, tmp_path / "cfg.yaml"))
    lake = Lake(tiled_copy.paths.lake)
    path = str(lake.path("sections"))
    before = lake.version("sections")
    # a later commit, as any Delta writer makes it: B02's sections gone
    write_deltalake(path, lake.read("sections").filter(pc.field("brain_id") == "B01"), mode="overwrite")
    after = lake.version("sections")
    assert after == before + 1
    then = DeltaTable(path, version=before)
    assert {r["brain_id"] for r in _rows(then.to_pyarrow_table())} == {"B01", "B02"}

    code, now, _ = _json(capsys, "--config", conf, "sql", "--format", "json", Q)
    assert code == 0 and now == _rows(DeltaTable(path).to_pyarrow_table()) and {r["brain_id"] for r in now} == {"B01"}
    code, old, _ = _json(capsys, "--config", conf, "sql", "--format", "json", "--version", f"sections={before}", Q)
    assert code == 0 and old == _rows(then.to_pyarrow_table())

    # history: every version delta-rs knows, newest first, with its time and operation
    code, hist, _ = _json(capsys, "--config", conf, "history", "sections", "--format", "json")
    theirs = DeltaTable(path).history()
    assert code == 0 and [h["version"] for h in hist] == list(range(after, -1, -1)) == [h["version"] for h in theirs]
    assert hist[0]["operation"] == "WRITE" and hist[0]["files_removed"] >= 1
    committed = {h["version"]: dt.datetime.fromisoformat(h["timestamp"]) for h in hist}
    assert committed[before] == dt.datetime.fromtimestamp(theirs[1]["timestamp"] / 1000, dt.timezone.utc)

    # --as-of: each table at its last version committed by then, as delta-rs's load_as_version reads it
    at = committed[before] + (committed[after] - committed[before]) / 2
    code, as_of, _ = _json(capsys, "--config", conf, "sql", "--format", "json", "--as-of", at.isoformat(), Q)
    theirs_then = DeltaTable(path)
    theirs_then.load_as_version(at)
    assert code == 0 and theirs_then.version() == before and as_of == _rows(theirs_then.to_pyarrow_table()) == old
    patches_then = DeltaTable(str(lake.path("patches")))
    patches_then.load_as_version(at)  # every table as of then: patches too, whichever version that was
    code, counts, _ = _json(capsys, "--config", conf, "sql", "--format", "json", "--as-of", at.isoformat(),
                            "SELECT count(*) AS n FROM patches")
    assert counts == [{"n": patches_then.to_pyarrow_table(columns=["patch_id"]).num_rows}]
    code, empty, err = _json(capsys, "--config", conf, "sql", "--format", "json", "--as-of", "2000-01-01",
                             "SELECT count(*) AS n FROM sections")
    assert code == 0 and empty == [{"n": 0}]  # delta-rs reads a time before the first commit as version 0 (empty)

    # a version that does not exist, a bad spec: exit 2 naming it; and nothing was written by any of this
    code, _, err = _json(capsys, "--config", conf, "sql", "--version", "sections=99", Q)
    assert code == 2 and "sections has no version 99" in err
    code, _, err = _json(capsys, "--config", conf, "sql", "--version", "nope=1", Q)
    assert code == 2 and "TABLE=N" in err
    assert lake.version("sections") == after


def test_lake_session_gives_spark_sql_every_table_by_name(tiled_lake, spark, tmp_path):
    """The documented one-liner's function: a Spark session with the lake's tables as views by their names."""
    from cytolake.engines.sql import lake_session

    s = lake_session(write_config(tiled_lake, tmp_path / "cfg.yaml"))
    lake = Lake(tiled_lake.paths.lake)
    assert {"sections", "patches", "areas", "pmaps"} <= {t.name for t in s.catalog.listTables()}
    got = s.sql("SELECT brain_id, count(*) AS n FROM patches GROUP BY brain_id ORDER BY brain_id").collect()
    ids = lake.read("patches", ["brain_id"])["brain_id"].to_pylist()
    assert [(r["brain_id"], r["n"]) for r in got] == sorted((b, ids.count(b)) for b in set(ids))
