"""The house rules, checked: layers without cycles, small modules, a light import."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import live_restore

PACKAGE = Path(live_restore.__file__).parent
MAX_MODULE_LINES = 500


def _part_of(module: str) -> str | None:
    """``live_restore.inference._session`` -> ``inference`` (a top-level module is its own part)."""
    parts = module.split(".")
    if parts[0] != "live_restore" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    """Every live_restore module ``path`` imports, at the top or inside functions (lazily)."""
    # the package a relative import starts from: the folder the module lives in
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            # `from . import x` / `from live_restore import frames`: the names may be modules
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return {m for m in found if m.startswith("live_restore")}


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source = _part_of(module)
        if source is None:  # live_restore/__init__.py: the lazy public surface
            continue
        for imported in _imports(path):
            target = _part_of(imported)
            is_module = (PACKAGE / target).is_dir() or (PACKAGE / f"{target}.py").is_file()
            if target and target != source and is_module:
                edges.setdefault(source, set()).add(target)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_subpackages_lazy_imports_included():
    edges = _graph()
    assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges) or [])}"
    # the bottom layer imports nothing of ours; the GUI-free layers never reach the viewer
    assert not edges.get("frames")
    for part in ("frames", "simulate", "models", "inference", "focus", "acquisition"):
        assert "viewer" not in edges.get(part, set()), part


def test_no_module_is_over_the_size_of_one_idea():
    sizes = {
        str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    big = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_import_is_light_and_the_public_names_resolve():
    code = (
        "import sys, live_restore, live_restore._cli\n"
        "heavy = [m for m in ('torch', 'napari', 'qtpy', 'PyQt6') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the package and the command line: `live-restore --help` and `--version` answer at once
    assert done.stdout.strip() == "", f"import live_restore loaded {done.stdout.strip()}"
    for name in ("load_model", "RestoreHook", "HookConfig", "build_hook", "demo_core"):
        assert name in live_restore.__all__
    for name in live_restore.__all__:
        assert getattr(live_restore, name) is not None, name


def test_building_a_hook_config_and_importing_acquisition_load_no_torch_qt_or_napari():
    code = (
        "import sys\n"
        "from live_restore import HookConfig\n"
        "HookConfig(models=['dfcan-sr2x-tiny'], executor='process')\n"
        "import live_restore.acquisition\n"
        "heavy = [m for m in ('torch', 'napari', 'qtpy', 'PyQt6', 'onnxruntime') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"loaded {done.stdout.strip()}"


def _private_imports() -> list[str]:
    """Imports of another subpackage's private module (``live_restore.X._y`` from outside X)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source = _part_of(module)
        for imported in _imports(path):
            parts = imported.split(".")
            if len(parts) >= 3 and parts[1] != source and parts[2].startswith("_"):
                if (PACKAGE / parts[1]).is_dir():
                    found.append(f"{module} imports {'.'.join(parts[:3])}")
    return sorted(set(found))


def test_subpackages_meet_only_through_their_public_names():
    assert _private_imports() == []


def test_docs_architecture_names_every_module_and_only_modules_that_exist():
    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = text.split("## Every module", 1)[1]
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    missing = sorted(m for m in modules if f"`{m}`" not in listed)
    assert not missing, f"docs/architecture.md does not name: {missing}"
    named = set(re.findall(r"^- `([\w/]+\.py)`", listed, flags=re.MULTILINE))
    assert named <= modules, f"named but gone: {sorted(named - modules)}"
