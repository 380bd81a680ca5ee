"""mkdocs hooks: the pages that are generated from the code, so they cannot drift from it.

- ``index.md`` is the README, its links made relative to the site;
- ``benchmark-log.md`` is benchmarks/RESULTS.md (where every measurement is recorded), and
  ``plots/`` the evaluation plots of benchmarks/eval/ and the benchmark plots of
  benchmarks/plots/;
- a page with ``<!-- generated: NAME -->`` gets that table: ``hook-config`` (HookConfig's fields,
  from the pydantic model), ``model-yaml`` (ModelSpec's), ``api`` (mkdocstrings entries for
  every name in ``live_restore.__all__``).
"""

from __future__ import annotations

import re
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
_MARKER = re.compile(r"<!-- generated: ([\w-]+) -->")


def on_files(files: Files, config: Any) -> Files:
    """Add the README as the home page and RESULTS.md as the benchmark log."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = readme.replace("](docs/", "](").replace(
        "](benchmarks/RESULTS.md)", "](benchmark-log.md)"
    )
    files.append(File.generated(config, "index.md", content=readme))
    log = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "benchmark-log.md", content=log))
    plots = [*(ROOT / "benchmarks" / "eval").glob("*.png")]
    plots += (ROOT / "benchmarks" / "plots").glob("*.png")
    for plot in sorted(plots):
        files.append(File.generated(config, f"plots/{plot.name}", abs_src_path=str(plot)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replace each generated-table marker with its table; benchmarks/ links: the site's copies."""
    markdown = markdown.replace("](../benchmarks/eval/", "](plots/")
    markdown = markdown.replace("](../benchmarks/plots/", "](plots/")
    markdown = markdown.replace("](../benchmarks/RESULTS.md)", "](benchmark-log.md)")
    markdown = markdown.replace("](../../benchmarks/RESULTS.md)", "](../benchmark-log.md)")
    return _MARKER.sub(lambda m: _GENERATORS[m.group(1)](), markdown)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    text = text or str(annotation).replace("typing.", "")
    return re.sub(r"\b[\w.]+\.(\w+)", r"\1", text).replace("NoneType", "None")


def _fields_table(model: Any, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    rows, nested = [], []
    for name, field in model.model_fields.items():
        value = None if field.is_required() else field.get_default(call_default_factory=True)
        value = value.value if isinstance(value, Enum) else value
        default = "required" if field.is_required() else repr(value)
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| `{prefix}{name}` | `{_type_name(field.annotation)}` | `{default}` | {description} |"
        )
        for inner in typing.get_args(field.annotation) or (field.annotation,):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                nested.append((f"{prefix}{name}.", inner))
    for inner_prefix, inner in nested:
        rows += _fields_table(inner, inner_prefix)
    return rows


def _table(model: Any) -> str:
    header = ["| field | type | default | what it is |", "| --- | --- | --- | --- |"]
    return "\n".join(header + _fields_table(model))


def _hook_config() -> str:
    from live_restore.acquisition import HookConfig

    return _table(HookConfig)


def _model_yaml() -> str:
    from live_restore.models import ModelSpec

    return _table(ModelSpec)


# beyond `live_restore.__all__`: the seams a user's code meets (groupings, executors, batch)
_MORE = {
    "live_restore.frames": ["SingleFrame", "AxisSet", "TemporalWindow", "AxisPairs", "Grouping"],
    "live_restore.acquisition": ["InThreadExecutor", "ProcessExecutor", "HookReport"],
    "live_restore.serving": ["restore_store", "inspect_run"],
    "live_restore.pycromanager": ["ImageProcessor"],
}


def _api() -> str:
    import live_restore

    homes = dict(live_restore._HOMES.items())
    for home, names in _MORE.items():
        homes.update(dict.fromkeys(names, home))
    return "\n".join(f"## `{name}`\n\n::: {home}.{name}\n" for name, home in sorted(homes.items()))


def _cli() -> str:
    """Every command's --help, as the installed command prints it (100 columns, no colour)."""
    import click
    import typer
    from typer.testing import CliRunner

    from live_restore._cli import app
    from live_restore._cli_common import console

    console.width = 100  # rich's console decides the width, not COLUMNS
    runner = CliRunner(env={"NO_COLOR": "1", "TERM": "dumb"})
    group = typer.main.get_command(app)

    def commands(prefix: list[str], command: click.Command) -> list[list[str]]:
        found = [prefix]
        if isinstance(command, click.Group):
            for name in sorted(command.list_commands(click.Context(command))):
                sub = command.get_command(click.Context(command), name)
                if sub is not None and not sub.hidden:
                    found += commands([*prefix, name], sub)
        return found

    parts = []
    for path in commands([], group):
        result = runner.invoke(app, [*path, "--help"])
        title = " ".join(["live-restore", *path])
        parts.append(f"## `{title}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


_GENERATORS = {
    "hook-config": _hook_config,
    "model-yaml": _model_yaml,
    "api": _api,
    "cli": _cli,
}
