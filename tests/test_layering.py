"""The layering contract (DESIGN.md, Layout), checked on the source: every
``import`` of every module, at the top or inside a function, no exceptions.

    core <- train <- export      core <- serve      core <- clients
    protos <- core, serve, clients

No layer imports the application (the modules of ``seedlock/``: CLI dispatch,
demo, benches), export does not import serve, and core, serve, clients and
protos never import torch. Module-level imports form no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"core": "core", "train": "train", "export": "export", "serve": "serve", "clients": "clients", "protos": "protos"}
ALLOWED = {
    "core": {"core", "protos"},
    "train": {"core", "train"},
    "export": {"core", "train", "export"},
    "serve": {"core", "protos", "serve"},
    "clients": {"core", "protos", "clients"},
    "protos": {"protos"},
}
TORCH_FREE = ("core", "serve", "clients", "protos")
APP = "app"  # the modules of seedlock/


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "seedlock":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["seedlock", *parts])


def layer_of(module: str) -> str | None:
    """``seedlock.serve.server`` -> "serve"; ``seedlock.demo`` -> "app"; ``seedlock`` itself -> "app"."""
    parts = module.split(".")
    if parts[0] != "seedlock":
        return None
    if len(parts) == 1:
        return APP
    return parts[1] if parts[1] in LAYERS else APP


def sources() -> list[Path]:
    files = [p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")]
    files += list((ROOT / "seedlock").rglob("*.py"))
    return sorted(p for p in files if "__pycache__" not in p.parts)


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:  # `if TYPE_CHECKING:` blocks are not imports at run time
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.append((base, node.lineno))
            # `from seedlock import demo` imports a module, not a name
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if base == "seedlock"]
    return found


def test_every_layer_module_is_checked():
    names = {layer_of(module_name(p)) for p in sources()}
    assert set(LAYERS) | {APP} <= names


@pytest.mark.parametrize("path", [p for p in sources() if layer_of(module_name(p)) != APP], ids=lambda p: str(p.relative_to(ROOT)))
def test_layer_imports_follow_the_dependency_direction(path):
    layer = layer_of(module_name(path))
    bad = []
    for target, line in imports(path):
        other = layer_of(target)
        if other is None:
            if layer in TORCH_FREE and target.split(".")[0] == "torch":
                bad.append(f"line {line}: {layer} imports torch")
            continue
        if target == "seedlock.core.version" or other in ALLOWED[layer]:
            continue
        bad.append(f"line {line}: {layer} imports {target} ({other})")
    assert not bad, f"{path.relative_to(ROOT)}: " + "; ".join(bad)


def test_the_checker_sees_a_violation(tmp_path):
    """The contract can fail: a serve module importing the demo, export or torch is caught."""
    bad = ROOT / "serve" / "_layering_probe.py"
    bad.write_text("import torch\nfrom seedlock import demo\n\ndef f():\n    from seedlock.export.common import ExportResult\n")
    try:
        with pytest.raises(AssertionError) as info:
            test_layer_imports_follow_the_dependency_direction(bad)
    finally:
        bad.unlink()
    message = str(info.value)
    assert "imports torch" in message and "seedlock.demo (app)" in message and "seedlock.export.common (export)" in message


def test_no_import_cycles_at_module_level():
    """Import cycles between seedlock modules (top-level imports) make import order matter."""
    graph: dict[str, set[str]] = {}
    known = {module_name(p): p for p in sources()}
    for name, path in known.items():
        graph[name] = set()
        for target, _ in imports(path, top_level_only=True):
            while target and target not in known:  # `from seedlock.core.x import name` -> seedlock.core.x
                target = target.rpartition(".")[0]
            if target and target != name and target != "seedlock":
                graph[name].add(target)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles: " + " | ".join(" -> ".join(c) for c in cycles)
