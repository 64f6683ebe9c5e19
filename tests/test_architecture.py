"""The package layers of `lib/cytolake`, checked on the source with `ast`: a package imports only packages of
lower layers, never a sibling of its own layer, and no two packages import each other (directly or round a
longer cycle). Every import counts: module-level and inside functions, `import x` and `from x import y`,
relative imports, and `importlib.import_module("...")` with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"

# Lowest first. A package (or top-level module) may import those of lower layers only.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(level) for level in (
    {"", "config", "schemas", "metrics"},  # foundation: settings, the one schema source, scores ("" is cytolake/__init__)
    {"io"},  # input files (content hashes), images, pyramid levels, label images, manifests, warps
    {"lake"},  # Delta tables and their snapshots' file lists, fingerprints of derived state, Spark, SQL
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


def violations(root: Path, top: str, layers: tuple[frozenset[str], ...]) -> list[str]:
    """One message per import of a higher layer, of a sibling of the same layer, of a package with no layer,
    and per cycle between packages."""
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
    return out


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
    ]


def test_checker_passes_a_clean_tree(tmp_path):
    layers = tuple(frozenset(x) for x in ({"", "base"}, {"top"}))
    root = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/base.py": "import os\n",
                            "pkg/top/__init__.py": "from ..base import x\nfrom pkg import base\n"})
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
