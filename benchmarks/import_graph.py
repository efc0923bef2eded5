"""The shape of the core: which module of ``compatgate`` imports which, and the largest modules.

Reads the source (no import runs): an import inside ``if TYPE_CHECKING:`` is for the type
checker only and is left out; an import inside a function runs when the function first does
(marked ``lazy``). Modules are named relative to the package (``defaults.openai``); a package
stands for its ``__init__``. It also lists the cycles among module-level imports and the
imports that point up from a subpackage into a module that imports that subpackage.

    uv run python benchmarks/import_graph.py                   # this checkout's src/compatgate
    uv run python benchmarks/import_graph.py ../main/src/compatgate --top 15
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "compatgate"

Edges = dict[str, dict[str, str]]  # module -> imported module -> "top" or "lazy"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "__init__"


def resolve(current: str, is_package: bool, level: int, target: str | None, modules: set[str]) -> str | None:
    """The module of ``compatgate`` that ``from <level dots><target> import`` names, if any."""
    if level == 0:
        if target is None or not (target == "compatgate" or target.startswith("compatgate.")):
            return None
        name = target.removeprefix("compatgate").lstrip(".") or "__init__"
    else:
        base = current.split(".") if current != "__init__" else []
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (level - 1)] if level > 1 else base
        name = ".".join([*base, *(target.split(".") if target else [])]) or "__init__"
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import of a module with whether it runs at import time (not in a function),
    leaving out ``if TYPE_CHECKING:`` blocks."""

    def walk(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (item for other in child.orelse for item in walk(other, lazy))
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, lazy
            yield from walk(child, lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    yield from walk(tree, False)


def graph(root: Path) -> tuple[Edges, dict[str, int]]:
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    modules = set(files)
    edges: Edges = {}
    sizes: dict[str, int] = {}
    for name, path in files.items():
        text = path.read_text()
        sizes[name] = text.count("\n")
        found: dict[str, str] = {}
        for node, lazy in imports(ast.parse(text)):
            package = path.name == "__init__.py"
            targets: list[str | None] = []
            if isinstance(node, ast.ImportFrom):
                source = resolve(name, package, node.level, node.module, modules)
                for alias in node.names:  # `from . import x`: the module x, else the package's x
                    sub = f"{node.module}.{alias.name}" if node.module else alias.name
                    exact = resolve(name, package, node.level, sub, modules)
                    targets.append(exact if exact is not None and exact != source else source)
            else:
                targets += [resolve(name, package, 0, alias.name, modules) for alias in node.names]
            for target in targets:
                if target is not None and target != name:
                    kind = "lazy" if lazy else "top"
                    if found.get(target) != "top":
                        found[target] = kind
        edges[name] = found
    return edges, sizes


def cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected groups of more than one module, over module-level imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, kind in edges.get(node, {}).items():
            if kind != "top":
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def upward(edges: Edges) -> list[tuple[str, str, str]]:
    """Imports from a subpackage's module into a module that imports that subpackage back."""
    found = []
    for module, targets in sorted(edges.items()):
        package = module.rsplit(".", 1)[0] if "." in module else None
        if package is None:
            continue
        for target, kind in sorted(targets.items()):
            if target.startswith(package + ".") or target == package:
                continue
            back = edges.get(target, {})
            if any(name == package or name.startswith(package + ".") for name in back):
                found.append((module, target, kind))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT, help="the compatgate package folder")
    parser.add_argument("--top", type=int, default=12, help="how many of the largest modules to list")
    args = parser.parse_args()
    edges, sizes = graph(args.root.resolve())
    print(f"# Runtime imports of {args.root} ({len(edges)} modules, {sum(sizes.values())} lines)\n")
    for module in sorted(edges):
        targets = edges[module]
        top = sorted(t for t, kind in targets.items() if kind == "top")
        lazy = sorted(t for t, kind in targets.items() if kind == "lazy")
        line = f"{module} ({sizes[module]}) -> {', '.join(top) or '-'}"
        print(line + (f"; lazy: {', '.join(lazy)}" if lazy else ""))
    print("\n# Largest modules (lines)\n")
    for module, size in sorted(sizes.items(), key=lambda item: -item[1])[: args.top]:
        print(f"{size:5d}  {module}")
    print("\n# Cycles among module-level imports")
    for group in cycles(edges) or [["none"]]:
        print("  " + " <-> ".join(group))
    print("\n# Upward imports (a subpackage into a module that imports it back)")
    for module, target, kind in upward(edges) or [("none", "", "")]:
        print(f"  {module} -> {target}" + (f" ({kind})" if kind else ""))


if __name__ == "__main__":
    main()
