"""`cytolake sql` on a real tiled lake: values by position when column names repeat, data printed as text (never
markup), only the rows shown fetched, memory and time limits that name themselves, output formats for pipes,
and the same over Spark SQL."""

import csv
import io
import json

import pytest

from cytolake.cli import main as cytolake
from cytolake.lake import Lake

from conftest import write_config


@pytest.fixture(scope="module")
def conf(tiled_lake, tmp_path_factory):
    return write_config(tiled_lake, tmp_path_factory.mktemp("sqlconf") / "conf.yaml")


def limited(tiled_lake, tmp_path, **sql):
    return write_config(tiled_lake.model_copy(update={"sql": tiled_lake.sql.model_copy(update=sql)}), tmp_path / "c.yaml")


def sql(conf, capsys, *args):
    rc = cytolake(["--config", str(conf), "sql", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def table_rows(out: str) -> list[list[str]]:
    """The cells of a printed rich table's body rows."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in out.splitlines() if line.startswith("│")]


def test_repeated_column_names_keep_their_values(conf, capsys):
    rc, out, _ = sql(conf, capsys, "SELECT 1 AS x, 2 AS x, 3 AS y")
    assert rc == 0 and table_rows(out) == [["1", "2", "3"]]
    rc, out, _ = sql(conf, capsys, "SELECT a.brain_id, b.brain_id, a.section_id, b.section_id FROM sections a "
                                   "JOIN sections b ON a.section_id + 1 = b.section_id AND a.brain_id <> b.brain_id "
                                   "WHERE a.brain_id = 'B01' ORDER BY 3")
    assert rc == 0 and table_rows(out) == [["B01", "B02", "1", "2"], ["B01", "B02", "2", "3"]]


def test_values_print_as_text_not_markup(conf, capsys):
    rc, out, err = sql(conf, capsys, "SELECT 'a[b]c' AS s, '[/]' AS t, '[bold]x[/bold]' AS u")
    assert rc == 0, err
    assert table_rows(out) == [["a[b]c", "[/]", "[bold]x[/bold]"]]


@pytest.mark.usefixtures("with_atlas")
def test_ingest_summary_prints_a_brain_id_with_markup_and_the_job_exits_3(cfg, spark, landing):
    from rich.console import Console

    from cytolake.console import print_ingest_summary
    from cytolake.runner import finish

    from conftest import edit_manifest, ingest

    for sid in (1, 2, 3):
        edit_manifest(landing / "B02" / "manifest.csv", sid, brain_id="B09[/x]")
    s = ingest(cfg, spark)
    buf = io.StringIO()
    print_ingest_summary(s, cfg, Console(file=buf, width=400))
    assert "B09[/x]" in buf.getvalue()
    assert finish(s.failed_sections + s.failed_brains, "sections or brains") == 3


def test_only_the_rows_shown_are_fetched_under_a_memory_cap(tiled_lake, tmp_path, capsys):
    # the cross join has ~10^11 rows: materialised it would need far more than 256 MB
    conf = limited(tiled_lake, tmp_path, memory_limit="256MB")
    rc, out, err = sql(conf, capsys, "SELECT a.area_index, b.area_index FROM pmaps a, pmaps b")
    assert rc == 0, err
    assert len(table_rows(out)) == 200 and "more rows not shown" in out
    rc, out, err = sql(conf, capsys, "--max-rows", "7", "--format", "csv", "SELECT a.area_index FROM pmaps a, pmaps b")
    assert rc == 0, err
    assert len(out.splitlines()) == 8


def test_a_query_past_the_memory_limit_says_so(tiled_lake, tmp_path, capsys):
    conf = limited(tiled_lake, tmp_path, memory_limit="64MB")
    rc, out, err = sql(conf, capsys, "SELECT list(p.probability) FROM pmaps p, range(50) r")
    assert rc == 1 and "memory limit of 64MB (sql.memory_limit)" in err


def test_a_query_past_the_time_limit_says_so(tiled_lake, tmp_path, capsys):
    conf = limited(tiled_lake, tmp_path, timeout_s=1.0)
    rc, out, err = sql(conf, capsys, "SELECT sum(a.probability * b.probability) FROM pmaps a, pmaps b")
    assert rc == 1 and "time limit of 1 s (sql.timeout_s)" in err


def test_csv_and_json_output_for_pipes(conf, capsys):
    q = "SELECT brain_id, section_id, status, 'a,b' AS c, [1, 2] AS l, 1 AS x, 2 AS x FROM sections ORDER BY 1, 2"
    rc, out, err = sql(conf, capsys, "--format", "csv", q)
    assert rc == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["brain_id", "section_id", "status", "c", "l", "x", "x"]
    assert rows[1] == ["B01", "1", "ok", "a,b", "[1, 2]", "1", "2"] and len(rows) == 7
    rc, out, err = sql(conf, capsys, "--format", "json", q)
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 6
    assert objs[0] == {"brain_id": "B01", "section_id": 1, "status": "ok", "c": "a,b", "l": [1, 2], "x": 1, "x_2": 2}


def test_spark_sql_over_views_of_every_table(tiled_lake, spark):
    from cytolake.engines.sql import ReadOnlyError, register_views, run_spark

    lake = Lake(tiled_lake.paths.lake)
    assert register_views(spark, lake) == {}
    assert {"sections", "patches", "pmaps", "areas"} <= {t.name for t in spark.catalog.listTables()}
    n = spark.sql("SELECT count(*) n FROM patches p JOIN sections s USING (brain_id, section_id)").first()["n"]
    assert n == lake.read("patches", ["patch_id"]).num_rows > 0
    r = run_spark(spark, lake, "SELECT 1 AS x, 2 AS x, brain_id FROM sections ORDER BY brain_id", 3)
    got = [row for b in r.batches for row in zip(*(c.to_pylist() for c in b.columns))]
    assert r.columns == ["x", "x", "brain_id"] and got == [(1, 2, "B01")] * 3 + [(1, 2, "B02")]  # 3 + 1 to say "more"
    for bad in ("DROP VIEW sections", "CREATE TABLE t AS SELECT 1", "INSERT OVERWRITE DIRECTORY '/tmp/x' SELECT 1",
                "SET spark.sql.runSQLOnFiles=true"):
        with pytest.raises(ReadOnlyError):
            run_spark(spark, lake, bad, 5)
    with pytest.raises(Exception, match="(?i)parquet|file|table or view"):
        list(run_spark(spark, lake, f"SELECT * FROM parquet.`{lake.path('sections')}`", 5).batches)


@pytest.mark.slow
def test_cli_spark_engine(conf, capsys):
    rc, out, err = sql(conf, capsys, "--engine", "spark", "--format", "csv",
                       "SELECT brain_id, count(*) AS n FROM patches GROUP BY brain_id ORDER BY brain_id")
    assert rc == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["brain_id", "n"] and [r[0] for r in rows[1:]] == ["B01", "B02"]
