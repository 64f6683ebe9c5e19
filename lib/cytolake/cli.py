"""The `cytolake` command: look at the lake, and look after it.

    cytolake [--config conf/local.yaml] tables
    cytolake [--config conf/local.yaml] check
    cytolake [--config conf/local.yaml] sql "SELECT s.brain_id, count(*) FROM sections s GROUP BY 1"
        [--engine duckdb|spark] [--format table|csv|json] [--max-rows N] [--version TABLE=N ...] [--as-of TIME]
    cytolake [--config conf/local.yaml] history [TABLE ...] [--format table|csv|json]
    cytolake [--config conf/local.yaml] maintain [--retention-days 7] [--wait 600]
    cytolake [--config conf/local.yaml] landing check [BRAIN|FOLDER ...]
    cytolake [--config conf/local.yaml] landing init FOLDER [--glob PATTERN] [--force]
    cytolake [--config conf/local.yaml] export [--model VERSION] [--out DIR] [--brains B01 ...] [--no-html]
    cytolake [--config conf/local.yaml] cluster start [--workers N] [--cores C] [--memory M] [--port P] | stop
    cytolake [--config conf/local.yaml] runs [--kind encoder|gnn|evaluation|probe|export] [--format table|csv|json]
    cytolake [--config conf/local.yaml] report
    cytolake [--config conf/local.yaml] section-map BRAIN SECTION [--model VERSION] [--out FILE.png] [--max-px N]

Exit codes: 0 all good; 1 failed (a SQL error, a query stopped by a limit, a damaged table found by `check`
or `tables`, `maintain` refused on a damaged table, `cluster start` failed, no report or section to show, an
`areas` table from before its `label` column: run ingest);
2 bad arguments or config (`paths.lake` not a lake folder included), or a query that is not read-only; 3 `landing
check` found problems (one line each); 4 the lake is locked by another run; 141 the reader of `sql`'s output closed
it early (`| head`), quietly.
"""

from __future__ import annotations

import argparse
import sys

from cytolake.engines.sql import QueryStopped, ReadOnlyError, query
from cytolake.lake import Lake
from cytolake.lake.check import LakeDamaged, check_lake
from cytolake.lake.maintain import maintain
from cytolake.console import print_check, print_maintenance, print_result, print_tables
from cytolake.runner import (EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE, add_config_argument, add_wait_argument,
                             existing_lake, lake_writer, settings, stdout_closed)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cytolake", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(p)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("tables", help="list the lake's tables with version, rows, files and size")
    sub.add_parser("check", help="verify every table's snapshot against its log (files present, sizes and row "
                                 "counts as logged, log entries whole); exit 1 with the list of problems")
    q = sub.add_parser("sql", help="run a read-only SQL query over the lake tables")
    q.add_argument("query")
    q.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb",
                   help="duckdb (default; DuckDB dialect) or spark (Spark SQL over temporary views, `spark` config)")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="table (default), csv (header row) or json (one JSON object per line) on stdout")
    q.add_argument("--max-rows", type=int, help="rows to show (default: sql.max_rows for a table, all for csv/json)")
    _add_time_travel_arguments(q, sub)
    m = sub.add_parser("maintain", help="compact small files and vacuum files older than the retention (takes the lake lock)")
    m.add_argument("--retention-days", type=float, help="time travel kept for this many days (default: maintain.retention_days)")
    add_wait_argument(m)
    ld = sub.add_parser("landing", help="check a landing folder before ingest, or write a manifest template")
    lsub = ld.add_subparsers(dest="landing_command", required=True)
    lc = lsub.add_parser("check", help="validate manifests, files, formats, spacings, placement and warps; "
                                       "one line per problem (exit 3 when there are any); touches no table")
    lc.add_argument("brains", nargs="*", metavar="BRAIN", help="a brain id under paths.landing, or the path of a "
                                                               "brain folder anywhere (default: every brain)")
    li = lsub.add_parser("init", help="write FOLDER/manifest.csv for the images under FOLDER (header spacings "
                                      "and label images in annotations/ filled in, affines and warp left to fill)")
    li.add_argument("folder")
    li.add_argument("--glob", help="images to list, relative to FOLDER (default: every TIFF/SVS/OME-Zarr "
                                   "outside annotations/ and truth/)")
    li.add_argument("--force", action="store_true", help="replace an existing manifest")
    ex = sub.add_parser("export", help="per brain: NIfTI label volumes, GIfTI surfaces and labels, label tables and "
                                       "HTML surface (area names on hover, legend) and volume views of the predicted "
                                       "areas (reads the lake only)")
    ex.add_argument("--model", help="feature model (default: train.model_version)")
    ex.add_argument("--out", help="output folder (default: paths.reports/maps-<run id>)")
    ex.add_argument("--brains", nargs="*")
    ex.add_argument("--no-html", action="store_true", help="skip the HTML views (surface about 5 MB, volume "
                                                             "about 0.7 MB per brain)")
    _add_cluster_parser(sub)
    _add_runs_parsers(sub)
    _add_section_map_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    cfg = settings(a.config)
    if a.command == "landing":
        return _landing(cfg, a)
    if a.command == "export":
        return _export(cfg, a)
    if a.command == "cluster":
        return _cluster(cfg, a)
    if a.command in ("runs", "report"):
        return _runs(cfg, a)
    if a.command == "history":
        return _history(cfg, a)
    if a.command == "section-map":
        return _section_map(cfg, a)
    lake = existing_lake(cfg)
    if a.command == "tables":
        return EXIT_FAILED if print_tables(lake) else 0
    if a.command == "check":
        problems = check_lake(lake)
        print_check(problems)
        n = sum(len(p) for p in problems.values())
        if n:
            print(f"error: {n} problem(s) in {sum(bool(p) for p in problems.values())} table(s)", file=sys.stderr)
            return EXIT_FAILED
        return 0
    if a.command == "maintain":
        days = cfg.maintain.retention_days if a.retention_days is None else a.retention_days
        if days < 0:
            print("error: --retention-days must be >= 0", file=sys.stderr)
            return EXIT_USAGE
        with lake_writer(cfg, "maintain", a.wait):
            try:
                print_maintenance(maintain(lake, days, cfg.maintain.target_file_mb))
            except LakeDamaged as e:
                print(f"error: {e}", file=sys.stderr)
                return EXIT_FAILED
        return 0
    return _sql(a, cfg, lake)


def _sql(a, cfg, lake: Lake) -> int:
    from cytolake.engines.sql import run_duckdb, run_spark

    if a.max_rows is not None and a.max_rows < 1:
        print("error: --max-rows must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    max_rows = a.max_rows if a.max_rows is not None else (cfg.sql.max_rows if a.format == "table" else None)
    try:
        snapshots = _sql_snapshots(a, lake)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if a.engine == "spark":
            from cytolake.engines.spark import spark_session

            result = run_spark(spark_session(cfg.spark), lake, a.query, max_rows, cfg.sql)
        else:
            result = run_duckdb(lake, a.query, cfg.sql, snapshots)
        for table, why in result.damaged.items():
            print(f"warning: table {table} is damaged and left out: {why}", file=sys.stderr)
        print_result(result.columns, result.batches, a.format, max_rows)
    except ReadOnlyError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except QueryStopped as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # the reader has all it wants (`| head`)
        return stdout_closed()
    except Exception as e:  # a SQL error: say what the engine said, no traceback
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _landing(cfg, a) -> int:
    from pathlib import Path

    from cytolake.ingest.landing import check_landing, init_manifest

    if a.landing_command == "init":
        try:
            path, notes = init_manifest(Path(a.folder), a.glob, a.force, a.config)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        print(f"wrote {path}")
        for n in notes:
            print(f"  {n}")
        return 0
    problems, n = check_landing(cfg, a.brains or None)
    for pr in problems:
        print(pr)
    print(f"{len(problems)} problem(s) in {n} section(s) under {cfg.paths.landing}", file=sys.stderr)
    return EXIT_PARTIAL if problems else 0


def _export(cfg, a) -> int:
    from cytolake.atlas.registered import AreasOutdated
    from cytolake.export.job import ExportError, run_export

    try:
        run_export(cfg, out=a.out, model=a.model, brains=a.brains, html=not a.no_html)
    except (ExportError, FileNotFoundError, AreasOutdated) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _add_cluster_parser(sub) -> None:
    c = sub.add_parser("cluster", help="start or stop a Spark standalone cluster on this machine (127.0.0.1) with "
                                       "pip's pyspark: a master and workers run by spark-class")
    csub = c.add_subparsers(dest="cluster_command", required=True)
    st = csub.add_parser("start", help="start a master and workers; print the spark-submit --master URL")
    st.add_argument("--workers", type=int, default=1, help="workers to start (default 1)")
    st.add_argument("--cores", type=int, default=1, help="cores each worker offers (default 1)")
    st.add_argument("--memory", default="1536m", help="memory each worker offers (default 1536m)")
    st.add_argument("--port", type=int, default=7077, help="the master's port (default 7077; 0 picks a free one)")
    for parser in (st, csub.add_parser("stop", help="stop the cluster `cluster start` recorded")):
        parser.add_argument("--dir", help="where the cluster's record, logs and work dirs are "
                                          "(default: spark-standalone/ beside paths.lake)")


def _cluster(cfg, a) -> int:
    from pathlib import Path

    from cytolake.cluster import start_cluster, stop_cluster
    from cytolake.engines.class_archive import archive_option

    folder = Path(a.dir) if a.dir else Path(cfg.paths.lake).parent / "spark-standalone"
    if a.cluster_command == "stop":
        stopped = stop_cluster(folder)
        print(f"stopped {stopped.url}" if stopped else f"no cluster recorded in {folder}")
        return 0
    if min(a.workers, a.cores) < 1:
        print("error: --workers and --cores must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        c = start_cluster(folder, a.workers, a.cores, a.memory, a.port, archive_option())
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"master {c.url} (web UI {c.ui}), {a.workers} worker(s) x {a.cores} core(s); logs in {folder}")
    print(f"submit with: .venv/bin/spark-submit --master {c.url} --conf spark.executor.cores={a.cores} "
          f"jobs/ingest.py --config {a.config}")
    print(f"stop with: cytolake --config {a.config} cluster stop{f' --dir {a.dir}' if a.dir else ''}")
    return 0



def _add_runs_parsers(sub) -> None:
    r = sub.add_parser("runs", help="every encoder, GNN run, evaluation, probe and export: id, fingerprint, date, "
                                    "figures, config and where its files are")
    r.add_argument("--kind", choices=["encoder", "gnn", "evaluation", "probe", "export"], action="append",
                   help="only runs of this kind (repeatable)")
    r.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="table (default), csv (header row) or json (one JSON object per line) on stdout")
    sub.add_parser("report", help="print the path of the latest evaluation report (report.md)")


def _runs(cfg, a) -> int:
    from cytolake.runs import latest_report, list_runs, runs_table

    if a.command == "report":
        path = latest_report(cfg)
        if path is None:
            print(f"error: no evaluation report under {cfg.paths.reports} (jobs/evaluate.py writes one)",
                  file=sys.stderr)
            return EXIT_FAILED
        print(path)
        return 0
    runs = [r for r in list_runs(cfg) if not a.kind or r.kind in a.kind]
    table = runs_table(runs)
    print_result(table.column_names, iter(table.to_batches()), a.format, None)
    if not runs:
        print(f"no runs under {cfg.paths.models}, {cfg.paths.lake} or {cfg.paths.reports}", file=sys.stderr)
    return 0



def _add_time_travel_arguments(q, sub) -> None:
    """`sql --version TABLE=N` / `--as-of TIME`, and the `history` command they go with."""
    q.add_argument("--version", action="append", metavar="TABLE=N",
                   help="read TABLE at Delta version N (repeatable; `cytolake history` lists the versions)")
    q.add_argument("--as-of", metavar="TIME", help="read every table as it was at TIME (ISO 8601, UTC unless a zone "
                                                   "is given): its last version committed by then")
    h = sub.add_parser("history", help="every version of each lake table (or of the named ones): time, operation, "
                                       "files added and removed, rows written")
    h.add_argument("tables", nargs="*", metavar="TABLE")
    h.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="table (default), csv (header row) or json (one JSON object per line) on stdout")


def _sql_snapshots(a, lake: Lake) -> dict | None:
    """The tables `sql` reads at another version (`--version`, `--as-of`), None when none; ValueError for a bad
    spec, a version that does not exist, or time travel asked of the Spark engine."""
    from cytolake.lake.history import parse_time, parse_versions, snapshots

    versions = parse_versions(a.version or [])
    as_of = parse_time(a.as_of) if a.as_of else None
    if not versions and as_of is None:
        return None
    if a.engine == "spark":
        raise ValueError("--version and --as-of read with the DuckDB engine only (leave out --engine spark)")
    loaded, missing = snapshots(lake, versions, as_of)
    wrong = [why for name, why in missing.items() if name in versions]
    if wrong:
        raise ValueError("; ".join(wrong) + " (`cytolake history` lists the versions)")
    for why in missing.values():
        print(f"note: {why}: read as empty", file=sys.stderr)
    return {**loaded, **dict.fromkeys(missing)}


def _history(cfg, a) -> int:
    from cytolake.lake.history import history

    try:
        t = history(Lake(cfg.paths.lake), a.tables or None)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print_result(t.column_names, iter(t.to_batches()), a.format, None)
    return 0



def _add_section_map_parser(sub) -> None:
    sm = sub.add_parser("section-map", help="a PNG of one section's predicted areas over its image, with a legend of "
                                            "the area names (and the annotation beside it where there is one)")
    sm.add_argument("brain")
    sm.add_argument("section", type=int)
    sm.add_argument("--model", help="feature model (default: train.model_version)")
    sm.add_argument("--out", help="the PNG (default: paths.reports/maps-<run id>/BRAIN_section_SECTION.png)")
    sm.add_argument("--max-px", type=int, default=2000,
                    help="the finest pyramid level at most this wide is drawn (default 2000)")


def _section_map(cfg, a) -> int:
    from cytolake.atlas.registered import AreasOutdated
    from cytolake.export.plan import ExportError
    from cytolake.export.section import section_map

    try:
        section_map(cfg, a.brain, a.section, a.model, a.out, a.max_px)
    except (ExportError, AreasOutdated) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
