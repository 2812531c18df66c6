"""How the code is laid out: dtviz imports without streamlit, and no module of dtviz or dtviz_app imports (at
top level or inside a function) a module that imports it back."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_graph(packages=("dtviz", "dtviz_app")) -> dict[str, set[str]]:
    """module -> the modules of ``packages`` it imports anywhere in its file (a package's __init__ is the package)."""
    files = {}
    for pkg in packages:
        for folder, _, names in os.walk(os.path.join(ROOT, pkg)):
            for name in names:
                if name.endswith(".py"):
                    module = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].replace(os.sep, ".")
                    files[module.removesuffix(".__init__")] = os.path.join(folder, name)
    graph = {m: set() for m in files}
    for module, path in files.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[module].add(target if target in files else node.module)
            elif isinstance(node, ast.Import):
                graph[module].update(a.name for a in node.names)
        graph[module] = {t for t in graph[module] if t in files and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 50 and "dtviz.cli.sweep" in graph["dtviz.cli.main"]  # imports inside functions count too
    assert cycles(graph) == []


def test_the_library_imports_without_streamlit():
    code = ("import sys; sys.modules['streamlit'] = None\n"
            "import dtviz, dtviz.cli.main, dtviz.evaluation.sweep, dtviz.analysis.blocks, dtviz.plots, dtviz.sampling.generate, dtviz.report\n"
            "assert 'streamlit' not in [m for m in sys.modules if sys.modules[m] is not None]")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


# --------------------------------------------------------------------------------------------- layering
# Each wing of dtviz/ sits on a layer and imports only its own layer and those below (models ← sources ←
# analysis / pruning ← sampling ← evaluation / plots ← builtin's training and card ← cli / serving / app).
# The most specific prefix wins: builtin's glyphs, classifier and templates are models (the evaluation
# read-outs use them), its training and card sit above evaluation.
LAYERS = {
    "dtviz.errors": 0, "dtviz.reference": 0,
    "dtviz.models": 1, "dtviz.builtin.glyphs": 1, "dtviz.builtin.classifier": 1, "dtviz.builtin.templates": 1,
    "dtviz.sources": 2,
    "dtviz.analysis": 3, "dtviz.pruning": 3,
    "dtviz.sampling": 4,
    "dtviz.evaluation": 5, "dtviz.plots": 5,
    "dtviz.builtin": 6,
    "dtviz.report": 7, "dtviz.serving": 7, "dtviz.cli": 7, "dtviz_app": 7,
}
# Deliberate exceptions, each with its reason: the claims scorecard's sampling rows run the Generator and the
# read-outs (inside the functions that need them); the rest of dtviz.analysis never samples.
ALLOWED_UP = {("dtviz.analysis.claims", "dtviz.sampling"), ("dtviz.analysis.claims", "dtviz.evaluation")}
TOP = {"dtviz", "dtviz.__main__"}  # the package's lazy front door and `python -m dtviz`


def layer_of(module: str) -> int | None:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if best is None else LAYERS[best]


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for module, targets in graph.items():
        if module in TOP:
            continue
        for target in targets:
            if target in TOP or target == "dtviz.errors":
                continue
            if any(module.startswith(a) and (target == b or target.startswith(b + ".")) for a, b in ALLOWED_UP):
                continue
            if layer_of(target) > layer_of(module):
                bad.append((module, target))
    return sorted(bad)


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if m not in TOP and layer_of(m) is None] == []


def test_no_import_runs_back_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_the_layering_check_finds_an_upward_import():
    graph = import_graph()
    graph["dtviz.sources.loading"] = graph["dtviz.sources.loading"] | {"dtviz.sampling.generate"}
    graph["dtviz.models.dit"] = graph["dtviz.models.dit"] | {"dtviz.sources.checkpoint"}
    assert upward_imports(graph) == [("dtviz.models.dit", "dtviz.sources.checkpoint"),
                                     ("dtviz.sources.loading", "dtviz.sampling.generate")]


def test_dtviz_shows_its_wings():
    entries = sorted(e for e in os.listdir(os.path.join(ROOT, "dtviz")) if e != "__pycache__")
    assert len(entries) <= 15, entries
    for wing in ("sources", "models", "analysis", "pruning", "sampling", "evaluation", "serving", "cli", "plots",
                 "reference", "builtin"):
        with open(os.path.join(ROOT, "dtviz", wing, "__init__.py"), encoding="utf-8") as fh:
            doc = ast.get_docstring(ast.parse(fh.read()))
        assert doc and len(doc) > 80, f"dtviz/{wing}/__init__.py must say what the wing holds and may import"
