"""No import cycles in lib/instructlake, counting the imports inside functions too: a cycle through a lazy
import works until someone moves that import to the top of its module, and it makes a module's tests
load half the package."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "lib"


def module_name(path: Path, lib: Path) -> str:
    parts = path.relative_to(lib).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules that the module at `path` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            candidates = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        out |= {c for c in candidates if c in known and c != name}
    return out


def import_graph(root: Path = LIB / "instructlake") -> dict[str, set[str]]:
    paths = {module_name(p, root.parent): p for p in root.rglob("*.py")}
    return {name: imported(p, name, set(paths)) for name, p in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_lazy_import_cycle(tmp_path):
    pkg = tmp_path / "instructlake"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from instructlake.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("import instructlake.a\n")
    (pkg / "d.py").write_text("from instructlake import a\n")
    graph = import_graph(pkg)
    assert graph["instructlake.sub.b"] == {"instructlake.c"}
    assert cycles(graph) == [["instructlake.a", "instructlake.c", "instructlake.sub.b"]]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 100 and "instructlake.synth.multiturn" in graph["instructlake.synth.evolve"]
    assert cycles(graph) == []
