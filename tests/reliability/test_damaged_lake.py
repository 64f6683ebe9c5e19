"""A damaged table on a real tiled lake: a missing data file, a garbled log entry, a commit entry cut at a line
boundary. `cytolake check` names table and file; the other tables stay usable; `maintain` refuses to delete
anything; a killed job's leftovers (files no commit names) are not damage and are still vacuumed."""

import shutil
from pathlib import Path

import pytest
from deltalake import DeltaTable

from cytolake.cli import main as cytolake
from cytolake.lake import Lake

from conftest import settings_at, write_config


@pytest.fixture
def lake_copy(tiled_lake, tmp_path):
    """A private copy of the tiled lake, and its config file."""
    cfg = settings_at(tmp_path, tiled_lake.paths.landing)
    shutil.copytree(tiled_lake.paths.lake, cfg.paths.lake)
    return Lake(cfg.paths.lake), write_config(cfg, tmp_path / "conf.yaml")


def run(conf, capsys, *args):
    rc = cytolake(["--config", str(conf), *args])
    out = capsys.readouterr()
    return rc, out.out + out.err


def data_files(lake: Lake, table: str) -> list[Path]:
    return sorted(lake.path(table).rglob("*.parquet"))


def last_entry(lake: Lake, table: str) -> Path:
    return sorted((lake.path(table) / "_delta_log").glob("*.json"))[-1]


def test_an_intact_lake_checks_clean(lake_copy, capsys):
    lake, conf = lake_copy
    from cytolake.lake.check import check_lake

    assert all(ps == [] for ps in check_lake(lake).values())
    rc, out = run(conf, capsys, "check")
    assert rc == 0 and "damaged" not in out


def test_a_new_lake_without_tables_checks_clean_so_a_first_reprocess_can_start(tmp_path, capsys):
    """The first scheduled run of reprocess meets a lake folder with no table yet: its check stage must not
    call that damage (the reprocess tests start from a registered atlas, so this is its only test)."""
    from cytolake.lake.check import check_lake
    from cytolake.reprocess import STAGES, _RUN

    cfg = settings_at(tmp_path)
    cfg.paths.lake.mkdir()  # the folder a scheduler's config names, no table in it yet
    assert check_lake(Lake(cfg.paths.lake)) == {}  # nothing to check is nothing damaged
    assert STAGES[0] == "check" and _RUN["check"](cfg, None, print).status == "ok"  # raises where damaged
    rc, out = run(write_config(cfg, tmp_path / "conf.yaml"), capsys, "check")
    assert rc == 0 and "damaged" not in out


def test_a_missing_data_file_leaves_the_other_tables_queryable(lake_copy, capsys):
    lake, conf = lake_copy
    gone = data_files(lake, "patches")[0]
    gone.unlink()
    rc, out = run(conf, capsys, "sql", "SELECT count(*) AS n FROM sections")
    assert rc == 0 and "│ 6 │" in out
    assert "table patches is damaged" in out and gone.name in out
    rc, out = run(conf, capsys, "sql", "SELECT count(*) FROM patches")
    assert rc == 1 and "patches" in out and gone.name in out
    rc, out = run(conf, capsys, "check")
    assert rc == 1 and "table patches" in out and gone.name in out and "missing" in out


def test_a_garbled_log_entry_is_named_and_the_other_tables_listed(lake_copy, capsys):
    lake, conf = lake_copy
    entry = last_entry(lake, "sections")
    entry.write_text(entry.read_text()[:40] + "\n")
    rc, out = run(conf, capsys, "tables")
    assert rc == 1 and "sections" in out and entry.name in out
    for t in ("patches", "pmaps", "areas", "brains"):
        assert t in out
    rc, out = run(conf, capsys, "sql", "SELECT count(*) AS n FROM brains")
    assert rc == 0 and "│ 2 │" in out and "table sections is damaged" in out
    rc, out = run(conf, capsys, "check")
    assert rc == 1 and "table sections" in out and entry.name in out


def test_a_commit_cut_at_a_line_boundary_is_found_and_maintain_deletes_nothing(lake_copy, capsys):
    lake, conf = lake_copy
    entry = last_entry(lake, "patches")
    lines = entry.read_text().splitlines(keepends=True)
    adds = [n for n, line in enumerate(lines) if line.startswith('{"add"')]
    assert len(adds) >= 2
    entry.write_text("".join(lines[: adds[1]]))  # still valid JSON lines: commitInfo and the first add
    files = set(data_files(lake, "patches"))
    assert DeltaTable(str(lake.path("patches"))).get_add_actions().num_rows == 1  # loads: the loss alone is silent
    rc, out = run(conf, capsys, "check")
    assert rc == 1 and "table patches" in out and entry.name in out and "cut" in out
    rc, out = run(conf, capsys, "maintain", "--retention-days", "0")
    assert rc == 1 and "refusing to maintain" in out and "patches" in out
    assert set(data_files(lake, "patches")) == files  # nothing deleted, in any table


def test_a_killed_jobs_leftovers_are_not_damage_and_are_vacuumed(lake_copy, capsys):
    lake, conf = lake_copy
    src = data_files(lake, "patches")[0]
    leftover = src.with_name("part-deadbeef0000-0123456789abcdef.parquet")
    shutil.copy(src, leftover)  # written by a job killed before its commit: no log entry names it
    rc, out = run(conf, capsys, "check")
    assert rc == 0, out
    rc, out = run(conf, capsys, "maintain", "--retention-days", "0")
    assert rc == 0, out
    assert not leftover.exists()


def test_maintain_with_nothing_to_do_commits_nothing(lake_copy, capsys):
    lake, conf = lake_copy
    assert run(conf, capsys, "maintain", "--retention-days", "0")[0] == 0
    versions = {s["table"]: s["version"] for s in lake.stats()}
    rc, out = run(conf, capsys, "maintain", "--retention-days", "0")
    assert rc == 0
    assert {s["table"]: s["version"] for s in Lake(lake.root).stats()} == versions
    removed = [line.split("│")[5].strip() for line in out.splitlines() if line.startswith("│")]
    assert removed and set(removed) == {"0"}
