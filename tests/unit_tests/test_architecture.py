"""The layout holds: a numpy-only core, no import cycles, one embedder identity."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from langchain_openai import OpenAIEmbeddings
from pydantic import SecretStr

from langchain_metallm.bench.cache import EmbeddingCache
from langchain_metallm.core.identity import embedder_label
from langchain_metallm.core.stores.base import namespace

PACKAGE = Path(__file__).resolve().parents[2] / "langchain_metallm"


def test_the_core_folder_imports_no_langchain() -> None:
    core = sorted(_module_name(p) for p in (PACKAGE / "core").rglob("*.py"))
    assert "langchain_metallm.core.router" in core  # the folder is the rule
    imports = "\n".join(f"import {name}" for name in core)
    script = textwrap.dedent(
        """
        import sys
        {imports}
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("langchain", "langchain_core", "langchain_openai", "pydantic"))
        print(",".join(loaded))
        """
    ).format(imports=imports)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (at any level of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found - {_module_name(path)}


def test_no_import_cycles_inside_the_package() -> None:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {name: _imports(path, modules) for name, path in files.items()}
    for name in graph:  # a package's __init__ may import its own modules
        graph[name] = {m for m in graph[name] if not name.startswith(f"{m}.")}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target) :], target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_two_openai_models_of_one_dimension_never_share_statistics(
    tmp_path: Path,
) -> None:
    key = SecretStr("sk-test")
    small = OpenAIEmbeddings(model="text-embedding-3-small", api_key=key)
    ada = OpenAIEmbeddings(model="text-embedding-ada-002", api_key=key)
    assert embedder_label(small) == "text-embedding-3-small"
    assert namespace("router", small) != namespace("router", ada)
    small_cache = EmbeddingCache(small, tmp_path).directory
    assert small_cache != EmbeddingCache(ada, tmp_path).directory
    shortened = OpenAIEmbeddings(
        model="text-embedding-3-small", dimensions=512, api_key=key
    )
    assert embedder_label(shortened) == "text-embedding-3-small@512"
