"""The package map holds: every module imports only what its package's rule allows.

Each package's `__init__` (and each top-level module) states its rule in a docstring line
`Imports: bindcli.a, bindcli.b.c, ...`; a module may import its own package and anything those
names cover. Imports inside functions and under TYPE_CHECKING count too: a lazy import is still
a dependency. Third-party packages with one home are checked here as well.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bindcli"

#: third-party packages and the only part of bind that may import them
HOMES = {
    "typer": ("bindcli.cli",),
    "rich": ("bindcli.cli",),
    "sqlite3": ("bindcli.collections",),
    "starlette": ("bindcli.serve",),
    "uvicorn": ("bindcli.serve",),
    "multipart": ("bindcli.serve",),
    "tiktoken": ("bindcli.serve.tokens",),
    "faiss": ("bindcli.collections",),
    "numkong": ("bindcli.collections",),
    "ray": ("bindcli.embed.ray_engine",),
    "diffusers": ("bindcli.generate",),
    "llm": ("bindcli.llm_plugin",),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _owner(module: str) -> str:
    """The unit whose rule governs `module`: its top-level package, or itself at the top."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _rule(owner: str) -> list[str] | None:
    """The names an owner's docstring allows; None when it states no rule."""
    doc = ast.get_docstring(ast.parse(MODULES[owner].read_text())) or ""
    match = re.search(r"^Imports: (.*?)(?:\n\n|\Z)", doc, re.M | re.S)
    if match is None:
        return None
    text = " ".join(match.group(1).split())
    if text.startswith("all of bindcli"):
        return ["bindcli"]
    return re.findall(r"\bbindcli(?:\.\w+)+", text)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of everything `path` imports, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "bindcli":  # `from bindcli import media`: each name is a module
                found += [(node.lineno, f"bindcli.{a.name}") for a in node.names if f"bindcli.{a.name}" in MODULES]
            else:
                found.append((node.lineno, node.module))
    return found


def _covered(name: str, allowed: list[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


OWNERS = sorted({_owner(m) for m in MODULES})


@pytest.mark.parametrize("owner", OWNERS)
def test_every_package_states_its_rule(owner):
    assert _rule(owner) is not None, f"{MODULES[owner]} has no 'Imports:' line in its docstring"


@pytest.mark.parametrize("owner", OWNERS)
def test_imports_follow_the_rule(owner):
    allowed = [owner, "bindcli." + "__version__", *(_rule(owner) or [])]
    broken = []
    for module, path in MODULES.items():
        if _owner(module) != owner:
            continue
        for line, name in _imports(path):
            if name.startswith("bindcli.") and not _covered(name, allowed):
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
            top = name.split(".")[0]
            if top in HOMES and not _covered(module, list(HOMES[top])):
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} "
                              f"(only {', '.join(HOMES[top])} may)")
    assert not broken, "\n".join(broken)


def test_the_rules_name_real_modules():
    for owner in OWNERS:
        for name in _rule(owner) or []:
            if name != "bindcli":
                assert name in MODULES, f"{owner}'s rule names {name}, which does not exist"


#: the one module that runs SQL: every statement is a named method of its `Store` (rclip's
#: db.py), so a schema change is made in one file
SQL_HOME = "bindcli.collections.store"
SQL_CALLS = ("execute", "executemany", "executescript")


def test_only_the_store_runs_sql():
    running = []
    for module, path in MODULES.items():
        if module == SQL_HOME:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
                running.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} calls .{node.func.attr}()")
    assert not running, "\n".join(running)
