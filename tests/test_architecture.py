"""The package layers of `lib/cytolake`, checked on the source with `ast`: a package imports only packages of
lower layers, never a sibling of its own layer, and no two packages import each other (directly or round a
longer cycle); and no module imports itself round a cycle of modules, inside one package too. Every import
counts: module-level and inside functions (the whole syntax tree is walked), `import x` and `from x import y`,
relative imports, and `importlib.import_module("...")` with a literal name. An import inside a function that
keeps start-up light (pyspark, torch, nilearn) is fine where it closes no cycle and imports no higher layer.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"

# Lowest first. A package (or top-level module) may import those of lower layers only.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(level) for level in (
    {"", "config", "schemas", "metrics"},  # foundation: settings, the one schema source, scores ("" is cytolake/__init__)
    {"io"},  # input files (content hashes), images, pyramid levels, label images, manifests, warps
    {"lake"},  # storage: Delta tables, their snapshots' file lists and history, checks, upkeep, fingerprints, the lock
    {"engines"},  # what reads and writes the tables: Spark (session, JVM start-up, one-commit writes), SQL
    {"atlas"},  # the pmaps, the area order, trilinear corners, the lake-vs-atlas check, the pmap join
    {"synth", "ingest", "tiling"},  # the stages that make patches
    {"train"},  # the encoder: architecture, loading, training
    {"embed"},  # features from an encoder
    {"graph"},  # surface graphs (uses tiling's cortex mask and patch cutting, and embed's inference, at its nodes)
    {"gnn"},  # node classifiers on the graphs
    {"export"},  # maps of a GNN run, and the k-means cluster map
    {"eval"},  # the comparison and report; embeds the exported maps, so above export
    {"reprocess", "console", "runner", "cluster", "runs"},  # orchestration, printing, a local cluster, run listing
    {"cli"},
))


@dataclass(frozen=True)
class Edge:
    path: Path
    line: int
    importer: str  # package of the importing module
    imported: str  # package of the imported module
    target: str  # the dotted name imported

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(dotted: str, top: str) -> str | None:
    """The top-level package (or module) of `top` a dotted name lies in; "" for `top` itself, None outside."""
    parts = dotted.split(".")
    if parts[0] != top:
        return None
    return parts[1] if len(parts) > 1 else ""


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in a module, relative ones resolved; `from p import x` gives `p.x`
    (x may be a submodule: `from cytolake import lake` imports the package lake)."""
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [(n.lineno, a.name) for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                source = ".".join(base[:len(base) - (n.level - 1)] + ([n.module] if n.module else []))
            else:
                source = n.module or ""
            out += [(n.lineno, f"{source}.{a.name}" if a.name != "*" else source) for a in n.names]
        elif (isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))
              and (n.func.id if isinstance(n.func, ast.Name) else n.func.attr) == "import_module"
              and n.args and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)):
            out.append((n.lineno, n.args[0].value))
    return out


def packages(root: Path, top: str) -> set[str]:
    return {package_of(module_name(p, root), top) for p in (root / top).rglob("*.py")}


def import_edges(root: Path, top: str) -> list[Edge]:
    """Every import from one package of `root/top` into another, once per line and imported package."""
    present = packages(root, top)
    edges = []
    for path in sorted((root / top).rglob("*.py")):
        module = module_name(path, root)
        importer = package_of(module, top)
        tree = ast.parse(path.read_text(), filename=str(path))
        seen = set()
        for line, name in imported_names(tree, module, path.name == "__init__.py"):
            imported = package_of(name, top)
            if imported is not None and imported not in present:
                imported = ""  # a name defined in the top package's __init__
            if imported is None or imported == importer or (line, imported) in seen:
                continue
            seen.add((line, imported))
            edges.append(Edge(path, line, importer, imported, name))
    return edges


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The package cycles (each once, as a list of packages starting at its smallest)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
    found = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                i = path.index(min(path))
                found.add(tuple(path[i:] + path[:i]))
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])

    for p in sorted(graph):
        walk(p, p, [p])
    return [list(c) for c in sorted(found)]


@dataclass(frozen=True)
class ModuleEdge:
    path: Path
    line: int
    importer: str  # dotted name of the importing module
    imported: str  # dotted name of the imported module (a package's __init__ by the package's name)


def modules(root: Path, top: str) -> dict[str, Path]:
    """Every module of `root/top` by its dotted name (a package by its own name, for its __init__.py)."""
    return {module_name(p, root): p for p in sorted((root / top).rglob("*.py"))}


def module_of(dotted: str, known: dict[str, Path]) -> str | None:
    """The module a dotted import name lands in: the longest prefix that is a module (`from a.b import f`,
    given as `a.b.f`, lands in `a.b` unless `a.b.f` is a module itself); None outside the tree."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def module_edges(root: Path, top: str) -> list[ModuleEdge]:
    """Every import of one module of `root/top` by another, once per line and imported module. Only the module
    named counts, not the parent packages Python initialises first (they are being initialised already
    whenever one of their own modules imports a sibling)."""
    known = modules(root, top)
    edges = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        seen = set()
        for line, name in imported_names(tree, module, path.name == "__init__.py"):
            imported = module_of(name, known)
            if imported is None or imported == module or (line, imported) in seen:
                continue
            seen.add((line, imported))
            edges.append(ModuleEdge(path, line, module, imported))
    return edges


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of `graph`, each sorted; those of one node without a loop left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def shortest_cycle(graph: dict[str, set[str]], start: str) -> list[str]:
    """The shortest cycle through `start` (as its nodes from `start` on), found breadth-first."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return []


def module_cycles(root: Path, top: str) -> list[str]:
    """One message per group of modules that import each other round a cycle (within one package or across
    packages): its modules, and the shortest cycle through the first of them with each import's place."""
    edges = module_edges(root, top)
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
    out = []
    for group in strongly_connected(graph):
        ring = shortest_cycle({v: graph[v] & set(group) for v in group}, group[0])
        ring = ring + [ring[0]]
        steps = [next(e for e in edges if (e.importer, e.imported) == pair) for pair in zip(ring, ring[1:])]
        out.append(f"import cycle between modules {', '.join(group)}: " + ", ".join(
            f"{e.path.relative_to(root)}:{e.line} ({e.importer} -> {e.imported})" for e in steps))
    return out


def violations(root: Path, top: str, layers: tuple[frozenset[str], ...]) -> list[str]:
    """One message per import of a higher layer, of a sibling of the same layer, of a package with no layer,
    per cycle between packages, and per group of modules importing each other round a cycle."""
    level = {p: i for i, ps in enumerate(layers) for p in ps}
    edges = import_edges(root, top)
    out = []
    out += [f"{top}/{p}: package {p!r} has no layer in LAYERS" for p in sorted(packages(root, top) - set(level))]
    for e in edges:
        a, b = level.get(e.importer), level.get(e.imported)
        if a is None or b is None:
            continue
        if b > a:
            out.append(f"{e.where(root)}: {e.importer!r} imports {e.imported!r} ({e.target}), a higher layer")
        elif b == a:
            out.append(f"{e.where(root)}: {e.importer!r} imports {e.imported!r} ({e.target}), a sibling of its layer")
    for c in cycles(edges):
        ring = c + [c[0]]
        steps = [next(e for e in edges if (e.importer, e.imported) == pair) for pair in zip(ring, ring[1:])]
        out.append("import cycle " + " -> ".join(ring) + ": " + ", ".join(
            f"{e.where(root)} ({e.importer} -> {e.imported})" for e in steps))
    return out + module_cycles(root, top)


def test_no_upward_sibling_or_circular_imports_in_cytolake():
    assert violations(LIB, "cytolake", LAYERS) == []


def test_every_layer_names_an_existing_package():
    assert set().union(*LAYERS) - packages(LIB, "cytolake") == set()


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_checker_flags_planted_violations(tmp_path):
    layers = tuple(frozenset(x) for x in ({"", "base"}, {"left", "right"}, {"top"}))
    root = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/base.py": "def f():\n    from pkg.top import main\n",  # upward, inside a function
        "pkg/left/__init__.py": "",
        "pkg/left/a.py": "import os\nfrom ..right import b\n",  # sibling, relative
        "pkg/right/__init__.py": "",
        "pkg/right/b.py": "import pkg.base\nimport pkg.left.a as a\n",  # sibling; with left/a a cycle
        "pkg/top/__init__.py": "from pkg import base\n",
        "pkg/top/main.py": "import importlib\nm = importlib.import_module('pkg.left.a')\n",  # allowed: downward
        "pkg/stray/__init__.py": "",
    })
    found = violations(root, "pkg", layers)
    assert found == [
        "pkg/stray: package 'stray' has no layer in LAYERS",
        "pkg/base.py:2: 'base' imports 'top' (pkg.top.main), a higher layer",
        "pkg/left/a.py:2: 'left' imports 'right' (pkg.right.b), a sibling of its layer",
        "pkg/right/b.py:2: 'right' imports 'left' (pkg.left.a), a sibling of its layer",
        "import cycle base -> top -> base: pkg/base.py:2 (base -> top), pkg/top/__init__.py:1 (top -> base)",
        "import cycle base -> top -> left -> right -> base: pkg/base.py:2 (base -> top), pkg/top/main.py:2 "
        "(top -> left), pkg/left/a.py:2 (left -> right), pkg/right/b.py:1 (right -> base)",
        "import cycle left -> right -> left: pkg/left/a.py:2 (left -> right), pkg/right/b.py:2 (right -> left)",
        "import cycle between modules pkg.base, pkg.left.a, pkg.right.b, pkg.top.main: pkg/base.py:2 (pkg.base -> "
        "pkg.top.main), pkg/top/main.py:2 (pkg.top.main -> pkg.left.a), pkg/left/a.py:2 (pkg.left.a -> pkg.right.b), "
        "pkg/right/b.py:1 (pkg.right.b -> pkg.base)",
    ]


def test_checker_flags_a_cycle_inside_one_package_closed_in_a_function(tmp_path):
    """The layers cannot see it (one package imports only itself); the module graph does, through an import
    hidden in a function, a relative one, or one of the package's __init__."""
    layers = tuple(frozenset(x) for x in ({""}, {"store"}))
    root = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/store/__init__.py": "from pkg.store.tables import Table\n",
        "pkg/store/tables.py": "import os\n\n\ndef stats():\n    from pkg.store.check import damaged\n",
        "pkg/store/check.py": "from .tables import Table\n",
        "pkg/store/keys.py": "import pkg.store\n",  # the package's __init__: -> tables, no way back
        "pkg/store/lock.py": "from pkg import store\n\n\ndef f():\n    import pkg.store.lock\n",  # itself
    })
    assert violations(root, "pkg", layers) == [
        "import cycle between modules pkg.store.check, pkg.store.tables: pkg/store/check.py:1 (pkg.store.check -> "
        "pkg.store.tables), pkg/store/tables.py:5 (pkg.store.tables -> pkg.store.check)"]
    (root / "pkg/store/tables.py").write_text("import os\n")
    (root / "pkg/store/__init__.py").write_text("from pkg.store.check import Table\n")
    (root / "pkg/store/check.py").write_text("def f():\n    from pkg.store import Table\n")  # check -> __init__
    assert violations(root, "pkg", layers) == [
        "import cycle between modules pkg.store, pkg.store.check: pkg/store/__init__.py:1 (pkg.store -> "
        "pkg.store.check), pkg/store/check.py:2 (pkg.store.check -> pkg.store)"]


def test_checker_passes_a_clean_tree(tmp_path):
    layers = tuple(frozenset(x) for x in ({"", "base"}, {"top"}))
    root = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/base.py": "import os\n",
                            "pkg/top/__init__.py": "from ..base import x\nfrom pkg import base\n",
                            # a heavy import kept inside a function, down the layers and round no cycle: fine
                            "pkg/top/run.py": "from pkg.top import helpers\n\n\ndef go():\n    import torch\n"
                                              "    from pkg.base import y\n",
                            "pkg/top/helpers.py": "def h():\n    from pkg.base import z\n"})
    assert violations(root, "pkg", layers) == []


MAX_RUN_LINES = 40  # issue 18: an orchestrator reads as plan, compute, commit; the work lives in named functions


def long_runs(root: Path, limit: int = MAX_RUN_LINES) -> list[str]:
    """`run_*` functions (a stage's orchestrator) longer than `limit` lines, docstring included."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("run_"):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {n} lines")
    return out


def test_no_stage_orchestrator_over_forty_lines(tmp_path):
    assert long_runs(LIB / "cytolake") == []
    planted = _tree(tmp_path, {"m.py": "def run_x():\n" + "    a = 1\n" * MAX_RUN_LINES + "\n\ndef helper():\n" + "    b = 2\n" * 60})
    assert long_runs(planted) == ["m.py:1 run_x: 41 lines"]


# Dated lines and measured figures belong to benchmarks/RESULTS.md and benchmarks/results/ (issue 35, item 1): a
# docstring, a comment or the design doc keeps the why and names the RESULTS topic. Caught in prose only (the
# docstrings and comments of lib/, all of docs/design.md), so settings and units in code stay free.
ISO_DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
MEASURED = re.compile("|".join((
    r"\b[a-z]+/s\b",  # a throughput: samples/s, patches/s, nodes/s
    r"\b\d+(?:\.\d+)? ?[KMGT]i?B/s\b",  # a transfer rate
    r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?x (?:faster|slower|smaller|larger|sooner|the|as)\b",  # a ratio to a baseline
    r"\b\d+\.\d+ ?(?:->|→) ?\d+\.\d+\b",  # a figure before -> after
    r"\b\d+\.\d+(?:-\d+\.\d+)? of (?:a bare|the time)\b",  # a ratio to a bare baseline
    r"\b\d+(?:\.\d+)? ?(?:ms|s|min|[KMGT]i?B)\b",  # a time or a size
)))


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring (module, class, function) of a Python file."""
    src = path.read_text()
    out = [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(src).readline)
           if t.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(src, str(path))):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                out += [(first.lineno + i, text) for i, text in enumerate(first.value.value.splitlines())]
    return sorted(out)


def record_in_prose(root: Path, python: Path, docs: list[Path]) -> list[str]:
    """Each date and measured figure in the docstrings and comments under `python` and in the `docs`."""
    found = [(p, n, text) for p in sorted(python.rglob("*.py")) for n, text in prose_lines(p)]
    found += [(p, n, text) for p in docs for n, text in enumerate(p.read_text().splitlines(), start=1)]
    return [f"{p.relative_to(root)}:{n}: {m.group(0)!r}" for p, n, text in found
            for pattern in (ISO_DATE, MEASURED) for m in pattern.finditer(text)]


def test_no_dates_or_measured_figures_in_docstrings_comments_or_the_design_doc():
    root = LIB.parent
    assert record_in_prose(root, LIB / "cytolake", [root / "docs" / "design.md"]) == []


def test_the_record_check_flags_prose_and_leaves_code_alone(tmp_path):
    root = _tree(tmp_path, {
        "lib/m.py": '"""Fast (2026-12-06): 2.4x the samples/s of the default."""\n\n'
                    'LIMIT = "2GB"  # the memory limit, a setting\n'
                    'STEP_S = 0.5  # 0.94 -> 0.40 over 40 epochs\n\n\n'
                    'def f():\n    """Reads 0.7-1 GB/s; took 6 s and 60 MB."""\n'
                    '    raise ValueError("expected a time such as 2026-12-07T09:30:00, at most 120 s")\n',
        "docs/design.md": "Block reads (tiling/patches.py): 13-15x faster, on 2 cores.\n"
                          "Reads 0.78-0.88 of a bare decode at 64 px (`train.patch_px`, 2 mm).\n",
    })
    assert record_in_prose(root, root / "lib", [root / "docs" / "design.md"]) == [
        "lib/m.py:1: '2026-12-06'", "lib/m.py:1: '2.4x the'", "lib/m.py:1: 'samples/s'",
        "lib/m.py:4: '0.94 -> 0.40'", "lib/m.py:8: '1 GB/s'", "lib/m.py:8: '6 s'", "lib/m.py:8: '60 MB'",
        "docs/design.md:1: '13-15x faster'", "docs/design.md:2: '0.78-0.88 of a bare'"]


STAGES = ("ingest", "tiling", "train", "embed", "graph", "gnn", "eval", "export")


def test_every_stage_has_the_same_three_doors():
    """plan.py (pure), compute.py (Spark / torch on Arrow), job.py (the run_* that wires them and commits)."""
    pkg = Path(__file__).resolve().parents[1] / "lib" / "cytolake"
    missing = [f"{s}/{door}" for s in STAGES for door in ("plan.py", "compute.py", "job.py")
               if not (pkg / s / door).is_file()]
    assert not missing, missing
