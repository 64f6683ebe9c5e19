"""The fenced shell commands of README.md, docs/*.md and notebooks/README.md, run as the docs write them.

Every fence says what it is by its info string (docs/reference.md, Commands in the docs):
- ```sh: run here, each command on its own, on the test config: `--config conf/X.yaml` and
  `CYTOLAKE_CONFIG=conf/X.yaml` name a copy of conf/test.yaml whose lake is a copy of the session's ingested
  and tiled test lake, `cytolake` is `.venv/bin/cytolake` (run through its entry point in-process when it is a
  plain command), `python` the venv's; exit 0 or the test fails;
- ```sh covered-by=TEST: too heavy to run here as written (a whole job, a cluster); the named test runs the
  same thing, and this test fails when that test is gone;
- ```text: not meant to be run as written (a synopsis with placeholders, other machines, tools not installed).
A fence without one of these fails the test, so a new command is classified when it is written.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, copy_of, write_config

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "notebooks" / "README.md"]
FENCE = re.compile(r"^```(.*)$")


@dataclass(frozen=True)
class Fence:
    file: Path
    line: int
    info: str
    body: list[str]

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def fences(path: Path) -> list[Fence]:
    """Every fenced block of a Markdown file, with its info string and first line number."""
    found, open_at, info, body = [], None, "", []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        m = FENCE.match(line)
        if m and open_at is None:
            open_at, info, body = n, m.group(1).strip(), []
        elif m:
            found.append(Fence(path, open_at, info, body))
            open_at = None
        elif open_at is not None:
            body.append(line)
    assert open_at is None, f"{path}:{open_at}: fence never closed"
    return found


def commands(body: list[str]) -> list[str]:
    """The commands of a shell fence: continuation lines joined, comment and blank lines dropped."""
    out, cur = [], ""
    for line in body:
        cur += line.strip() if cur else line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip() + " "
            continue
        if cur.strip() and not cur.lstrip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def all_fences() -> list[Fence]:
    return [f for path in DOCS for f in fences(path)]


def on_test_config(command: str, config: Path) -> str:
    """The command with its config redirected to `config`, and `cytolake` / `python` / `.venv/bin` resolved in
    this environment."""
    command = re.sub(r"--config conf/[\w.-]+\.yaml", f"--config {config}", command)
    command = re.sub(r"CYTOLAKE_CONFIG=conf/[\w.-]+\.yaml", f"CYTOLAKE_CONFIG={config}", command)
    command = command.replace(".venv/bin/", f"{sys.prefix}/bin/")
    return re.sub(r"^(cytolake|python) ", lambda m: f"{sys.prefix}/bin/{m.group(1)} ", command)


def test_every_fence_says_whether_it_runs_and_a_covering_test_exists():
    kinds = {}
    for f in all_fences():
        kind = f.info.split()[0] if f.info else ""
        assert kind in ("sh", "text"), f"{f.where()}: fence without `sh`, `sh covered-by=...` or `text`"
        kinds[kind] = kinds.get(kind, 0) + 1
        for cover in re.findall(r"covered-by=(\S+)", f.info):
            file, _, name = cover.partition("::")
            source = (ROOT / file).read_text()
            assert name in {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}, \
                f"{f.where()}: {cover} does not exist"
    assert kinds.get("sh", 0) >= 4 and kinds.get("text", 0) >= 1, kinds


RUNNABLE = [f for f in all_fences() if f.info == "sh"]


@pytest.fixture(scope="module")
def docs_config(tmp_path_factory, tiled_session) -> Path:
    """conf/test.yaml on a copy of the session's tiled lake (its landing shared, read only)."""
    base = tmp_path_factory.mktemp("docs")
    return write_config(copy_of(tiled_session, base), base / "test.yaml")


def _in_process(argv: list[str], cwd: Path) -> int:
    """`cytolake ARGS` through the console script's own entry point (`cytolake.cli:main`) in this process: the
    same code and arguments, without a Python start per command."""
    from cytolake.cli import main

    here = Path.cwd()
    os.chdir(cwd)
    try:
        return main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(here)


@pytest.mark.parametrize("fence", RUNNABLE, ids=[f.where() for f in RUNNABLE])
def test_the_runnable_commands_of_the_docs_run_as_written(fence, docs_config, tmp_path):
    """Each command in a working folder that looks like the repository root (jobs/, conf/, notebooks/, .venv
    linked), so a command's own output files stay out of the checkout. A plain `cytolake ...` (no pipe,
    redirection or variable) runs in-process through its entry point; anything else in bash."""
    for name in ("jobs", "conf", "notebooks", "lib", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
    for command in commands(fence.body):
        run = on_test_config(command, docs_config)
        argv = shlex.split(run)
        if argv[0] == f"{sys.prefix}/bin/cytolake" and not re.search(r"[|<>;&$`]", run.replace(argv[-1], "")):
            code, out = _in_process(argv[1:], tmp_path), ""
        else:
            r = subprocess.run(["bash", "-c", run], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            code, out = r.returncode, f"{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        assert code == 0, f"{fence.where()}: `{command}` exited {code}\n{out}"


def test_commands_are_split_and_redirected_as_a_shell_would_run_them(tmp_path):
    body = ["# a comment", "cytolake --config conf/cluster.yaml sql \\", "  \"SELECT 1\" --format csv", "",
            "CYTOLAKE_CONFIG=conf/local.yaml .venv/bin/jupyter execute notebooks/x.ipynb"]
    got = [on_test_config(c, tmp_path / "t.yaml") for c in commands(body)]
    assert got == [f"{sys.prefix}/bin/cytolake --config {tmp_path / 't.yaml'} sql \"SELECT 1\" --format csv",
                   f"CYTOLAKE_CONFIG={tmp_path / 't.yaml'} {sys.prefix}/bin/jupyter execute notebooks/x.ipynb"]
    assert shlex.split(got[0])[-3:] == ["SELECT 1", "--format", "csv"]


def _rows(prefix: str) -> str:
    """The first cells of reference.md's Jobs rows that start with `prefix`, joined."""
    cells = [line.split(" | ")[0] for line in (ROOT / "docs" / "reference.md").read_text().splitlines()
             if line.startswith("| `")]
    return " ".join(c for c in cells if prefix in c.split("`")[1])


def _job_flags(path: Path) -> set[str]:
    """The options a job's parser takes, from its source: its own add_argument calls, plus --wait unless its
    parser is made with writes_lake=False."""
    flags = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name == "add_argument":
                flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")}
            if name == "parser" and not any(k.arg == "writes_lake" for k in node.keywords):
                flags.add("--wait")
    return flags


@pytest.mark.parametrize("job", sorted(p.stem for p in (ROOT / "jobs").glob("*.py")))
def test_the_jobs_table_lists_every_flag_of_every_job(job):
    flags = _job_flags(ROOT / "jobs" / f"{job}.py")
    rows = _rows(f"jobs/{job}.py")
    assert rows, f"reference.md has no row for jobs/{job}.py"
    assert {f for f in flags if f not in rows} == set(), f"jobs/{job}.py: flags missing from reference.md's Jobs table"


def test_the_jobs_table_lists_every_cytolake_command_and_flag():
    import argparse

    from cytolake.cli import _parser

    def commands(p: argparse.ArgumentParser, path: tuple[str, ...]):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, {o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
        for s in subs:
            for name, child in s.choices.items():
                yield from commands(child, (*path, name))

    found = list(commands(_parser(), ()))
    assert len(found) >= 12
    assert all(f"; {code} " in _parser().format_help().replace("\n", " ") for code in (1, 2, 3, 4))  # every exit code
    for path, flags in found:
        rows = _rows(f"cytolake [--config ...] {path[0]}")
        assert " ".join(path) in rows, f"reference.md has no row for cytolake {' '.join(path)}"
        assert {f for f in flags if f not in rows} == set(), f"cytolake {' '.join(path)}: flags missing"
