"""Print the package's module graph: modules, import levels, cycles and the longest functions.

`python benchmarks/module_graph.py [ROOT ...]` (default: ae_jax). A module's level is 0 when it
imports nothing of the package, else one more than the highest level it imports; modules in a cycle share
a level and are listed as a cycle. Imports inside functions count: they are dependencies all the same.
"""

from __future__ import annotations

import argparse
import ast
import os


def modules(roots: list[str]) -> dict[str, str]:
    """Dotted module name -> path, for every .py file under the roots."""
    found = {}
    for root in roots:
        for folder, _, files in os.walk(root):
            for f in sorted(files):
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    name = os.path.splitext(path)[0].replace(os.sep, ".")
                    found[name.removesuffix(".__init__")] = path
    return found


def imports(path: str, name: str, known: dict[str, str]) -> set[str]:
    """The package modules a file imports (from-imports of a package resolve to the submodule when one exists)."""
    tree = ast.parse(open(path).read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []

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
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def function_lengths(known: dict[str, str]) -> list[tuple[int, str]]:
    """(lines, module.function) for every function and method."""
    out = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    return sorted(out, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("roots", nargs="*", default=["ae_jax"])
    parser.add_argument("--longest", type=int, default=5)
    args = parser.parse_args()
    known = modules(args.roots)
    graph = {n: imports(p, n, known) & set(known) for n, p in known.items()}
    comps = strongly_connected(graph)  # in reverse topological order: dependencies first
    comp_of = {v: i for i, c in enumerate(comps) for v in c}
    level = {}
    for i, comp in enumerate(comps):
        deps = {comp_of[w] for v in comp for w in graph[v]} - {i}
        level[i] = 1 + max((level[d] for d in deps), default=-1)
    cycles = [c for c in comps if len(c) > 1]
    lines = sum(len(open(p).read().splitlines()) for p in known.values())
    print(f"{len(known)} modules, {lines} lines, {1 + max(level.values())} import levels, {len(cycles)} cycles")
    for lv in range(max(level.values()), -1, -1):
        names = sorted(v for i, c in enumerate(comps) if level[i] == lv for v in c)
        print(f"  level {lv}: {', '.join(names)}")
    for c in cycles:
        print(f"  cycle: {' <-> '.join(c)}")
    longest = function_lengths(known)
    over = sum(1 for n, _ in longest if n > 60)
    print(f"functions longer than 60 lines: {over}; the {args.longest} longest:")
    for n, f in longest[: args.longest]:
        print(f"  {n:4d}  {f}")


if __name__ == "__main__":
    main()
