"""Examples that cannot rot: the README's Python runs, and every command the README and the
getting-started page show is a real command with real options."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from conftest import requires_democam
from live_restore.devices import config_path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(page: Path, languages: set[str]) -> list[str]:
    return [body for lang, body in _FENCE.findall(page.read_text()) if lang in languages]


def _command_line() -> Any:
    """The click command typer builds from the app (typer 0.29 vendors its own click)."""
    from live_restore._cli import app

    return typer.main.get_command(app)


def _subcommand(words: list[str]) -> str:
    """``engines build --backend x`` -> ``engines build``: the words that name a command."""
    group = _command_line()
    path: list[str] = []
    for word in words:
        if word not in getattr(group, "commands", {}):
            break
        path.append(word)
        group = group.commands[word]
    return " ".join(path) or words[0]


def _options(path: str) -> set[str]:
    command = _command_line()
    for word in path.split():
        command = command.commands[word]
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def _commands() -> dict[str, set[str]]:
    """live-restore (sub)command -> the options shown with it on the pages."""
    shown: dict[str, set[str]] = {}
    for page in PAGES:
        for block in _blocks(page, {"", "bash", "console", "sh"}):
            current = None
            for line in block.splitlines():
                text = line.split("#", 1)[0].strip()
                if text.startswith("live-restore "):
                    current = _subcommand(text.split()[1:])
                    shown.setdefault(current, set())
                elif not line.startswith(" "):
                    current = None
                if current is not None:
                    shown[current] |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))
    return shown


def test_the_pages_show_commands():
    assert {"demo", "gui", "acquire"} <= set(_commands())


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_shown_exists_with_the_options_shown(command, cli):
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0, f"live-restore {command}: {result.output}"
    missing = sorted(_commands()[command] - _options(command))
    assert not missing, f"live-restore {command} has no {missing}"


def test_every_make_target_shown_exists():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for page in PAGES:
        for block in _blocks(page, {"", "bash", "sh"}):
            for used in re.findall(r"^\s*make ([\w-]+)", block, re.MULTILINE):
                assert used in targets, f"{page.name} shows `make {used}`"


@requires_democam
def test_the_readme_python_example_runs(tmp_path):
    """On Micro-Manager's C++ DemoCamera, with 2 quick time points instead of 60 at 1 s."""
    (code,) = _blocks(ROOT / "README.md", {"python"})
    for shown, small in {
        '"my_scope.cfg"': repr(str(config_path("democam.cfg"))),
        '{"interval": 1, "loops": 60}': '{"interval": 0, "loops": 2}',
    }.items():
        assert shown in code, f"the README's example no longer has {shown}"
        code = code.replace(shown, small)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "frames_restored=2" in done.stdout
    assert (tmp_path / "run-01" / "frames.csv").is_file()
