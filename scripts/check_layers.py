#!/usr/bin/env python3
"""The layer rules the compiler cannot check (scripts/check-layers.sh runs
this; docs/design.md, "Module map", explains the layers).

1. The pure core (crates/core) names no runtime, network or filesystem:
   no tokio, reqwest, tonic, hyper, std::fs or std::net in its sources, and
   no such crate among the dependencies of its Cargo.toml. (The compiler
   already refuses what is not a dependency; this keeps one from being
   added quietly.)
2. No import cycle between the top-level modules of the provider crate
   (src/<m>.rs with src/<m>/): the graph is built from `crate::<m>`
   references (and `akv_csi_provider::<m>` in main.rs).
3. No arrow pointing up: a module may import only modules of its own layer
   or lower ones (LAYERS below). A module missing from the table is an
   error, so the table stays the map.

Usage: check_layers.py [ROOT]   (ROOT defaults to the repository)
Exit status 1 on any violation, each printed on its own line.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Highest first. A module may use its own layer and the ones below it.
LAYERS: list[tuple[str, set[str]]] = [
    ("edge", {"main", "app", "cli", "config", "dryrun", "admin", "server", "socket",
              "authority", "trace", "health", "connection", "unfinished"}),
    ("orchestration", {"mount"}),
    ("I/O", {"reads", "auth", "keyvault"}),
    ("transport", {"http", "throttle"}),
    ("bottom", {"metrics", "budget", "shared", "token", "proto"}),
]

# Re-exported from akv-core by src/lib.rs: below every provider module.
CORE_REEXPORTS = {"cloud", "object", "params", "render", "retry", "spc", "go", "labels"}

FORBIDDEN_IN_CORE = re.compile(
    r"\b(tokio|reqwest|tonic|hyper)::|\bstd::(fs|net)\b|\buse (tokio|reqwest|tonic|hyper)\b"
)
FORBIDDEN_CORE_DEPS = ("tokio", "reqwest", "tonic", "hyper", "axum", "h2", "mio", "socket2")

CRATE_PATH = re.compile(r"\b(?:crate|akv_csi_provider)::(\w+)")
CRATE_GROUP = re.compile(r"\b(?:crate|akv_csi_provider)::\{")


def layer_of() -> dict[str, tuple[int, str]]:
    table = {}
    for rank, (name, modules) in enumerate(LAYERS):
        for module in modules:
            table[module] = (len(LAYERS) - rank, name)
    return table


def strip_comments(line: str) -> str:
    """The code of a line without a `//` comment (strings are not parsed:
    good enough for `use` lines and paths)."""
    code = line.split("//", 1)[0]
    return code


def group_heads(text: str, start: int) -> list[str]:
    """Top-level names in a `crate::{a, b::c, d::{e}}` group starting at
    the `{` at `start`."""
    depth, name, heads, expecting = 0, "", [], True
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        if depth == 1:
            if ch == ",":
                expecting = True
                name = ""
                continue
            if expecting:
                if ch.isalnum() or ch == "_":
                    name += ch
                    continue
                if name:
                    heads.append(name)
                    expecting = False
                    name = ""
    if expecting and name:
        heads.append(name)
    return heads


def references(path: Path) -> list[tuple[str, int]]:
    """(module, line number) for every crate-level path in a file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    code = [strip_comments(l) for l in lines]
    out = []
    for number, line in enumerate(code, 1):
        for m in CRATE_PATH.finditer(line):
            out.append((m.group(1), number))
    # Groups may span lines: search the joined text, map back to lines.
    joined = "\n".join(code)
    for m in CRATE_GROUP.finditer(joined):
        number = joined.count("\n", 0, m.start()) + 1
        for head in group_heads(joined, m.end() - 1):
            out.append((head, number))
    return out


def provider_modules(src: Path) -> dict[str, list[Path]]:
    """Top-level module → its files (src/m.rs and everything under src/m/)."""
    modules: dict[str, list[Path]] = {}
    for file in sorted(src.glob("*.rs")):
        if file.stem == "lib":
            continue
        modules.setdefault(file.stem, []).append(file)
    for directory in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(directory.rglob("*.rs"))
        if files:
            modules.setdefault(directory.name, []).extend(files)
    return modules


def check_core(root: Path) -> list[str]:
    errors = []
    core = root / "crates" / "core"
    for file in sorted((core / "src").rglob("*.rs")):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("//"):
                continue
            if FORBIDDEN_IN_CORE.search(strip_comments(line)):
                rel = file.relative_to(root)
                errors.append(f"pure core does I/O: {rel}:{number}: {line.strip()}")
    manifest = core / "Cargo.toml"
    if manifest.exists():
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        for section in ("dependencies", "build-dependencies"):
            for dep in data.get(section, {}):
                if dep.startswith(FORBIDDEN_CORE_DEPS):
                    errors.append(
                        f"pure core depends on a runtime/network crate: "
                        f"crates/core/Cargo.toml [{section}] {dep}"
                    )
    return errors


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def check_provider(root: Path) -> list[str]:
    errors = []
    src = root / "src"
    if not src.is_dir():
        return errors
    layers = layer_of()
    modules = provider_modules(src)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    # (from, to) → first place it is seen
    where: dict[tuple[str, str], str] = {}
    for module, files in modules.items():
        if module not in layers:
            errors.append(
                f"module `{module}` has no layer: add it to LAYERS in scripts/check_layers.py "
                f"(and to docs/design.md)"
            )
        for file in files:
            for target, number in references(file):
                if target == module or target in CORE_REEXPORTS or target not in modules:
                    continue
                graph[module].add(target)
                where.setdefault((module, target), f"{file.relative_to(root)}:{number}")
    for component in strongly_connected(graph):
        members = set(component)
        arrows = sorted(
            f"{a} → {b} ({where[(a, b)]})" for a in component for b in graph[a] if b in members
        )
        errors.append(f"import cycle between {', '.join(component)}: " + "; ".join(arrows))
    for (a, b), place in sorted(where.items()):
        if a in layers and b in layers and layers[b][0] > layers[a][0]:
            errors.append(
                f"upward import: {a} ({layers[a][1]}) → {b} ({layers[b][1]}) at {place}"
            )
    return errors


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    errors = check_core(root) + check_provider(root)
    for error in errors:
        print(f"layer violation: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
