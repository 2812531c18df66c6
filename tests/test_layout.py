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
    assert len(graph) > 50 and "dtviz.sweep_cli" in graph["dtviz.cli"]  # imports inside functions count too
    assert cycles(graph) == []


def test_the_library_imports_without_streamlit():
    code = ("import sys; sys.modules['streamlit'] = None\n"
            "import dtviz, dtviz.cli, dtviz.sweep, dtviz.blocks, dtviz.plots, dtviz.generate, dtviz.report\n"
            "assert 'streamlit' not in [m for m in sys.modules if sys.modules[m] is not None]")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
