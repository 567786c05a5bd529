"""The engine's layering: engine/ never imports streamlit, and no engine module imports itself through others."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"


def test_no_streamlit_import_in_engine_sources():
    offenders = [str(path) for path in ENGINE.rglob("*.py")
                 if re.search(r"^\s*(import streamlit|from streamlit)", path.read_text(), re.MULTILINE)]
    assert offenders == []


def test_importing_the_whole_engine_does_not_load_streamlit():
    code = ("import sys, engine.cli, engine.services, engine.analysis.frontier, engine.runner.store;"
            "from engine.techniques.registry import technique_names; technique_names();"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "False"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the engine modules it imports, at module level or inside functions (a lazy import that closes a
    loop is still a loop in the design). `from package import name` counts the submodule when `name` is one."""
    modules = {_module_name(path): path for path in ENGINE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other in a loop (size > 1)."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycles_in_the_engine():
    assert strongly_connected(import_graph()) == []


def test_the_cycle_check_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_module_imports_another_only_for_its_side_effects():
    """`import x  # noqa: F401`-style imports whose name is never used are how registration by import hides."""
    offenders = []
    for path in ENGINE.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"^\s*(?:from engine\S* import \S+ as _\w+|import engine\S*)\s*#\s*noqa: F401",
                                 text, re.MULTILINE):
            offenders.append(f"{path.relative_to(ROOT)}: {match.group(0).strip()}")
    assert offenders == []
