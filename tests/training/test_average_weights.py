"""benchmarks/average_weights.py, which made the shipped dfcan-sr2x's start."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from live_restore.models import ModelLoadError, file_sha256, read_spec, write_spec

REPO = Path(__file__).resolve().parents[2]
LITE, FULL = REPO / "engines" / "dfcan-sr2x-lite", REPO / "engines" / "dfcan-sr2x"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "average_weights", REPO / "benchmarks" / "average_weights.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lite_plus_one(folder: Path) -> dict[str, torch.Tensor]:
    """Lite's weights, every one plus 1, saved in ``folder``; lite's own weights returned."""
    lite = load_file(LITE / "weights.safetensors")
    folder.mkdir()
    save_file({k: v + 1 for k, v in lite.items()}, folder / "weights.safetensors")
    return lite


def test_the_average_lies_between_its_ends_and_says_what_it_averaged(tmp_path: Path) -> None:
    # a second model of the same size: lite with every weight plus 1
    lite = _lite_plus_one(shifted := tmp_path / "shifted")
    digest = file_sha256(shifted / "weights.safetensors")
    write_spec(shifted, read_spec(LITE).model_copy(update={"weights_sha256": digest}))
    sha = _script().average(LITE, shifted, 0.25, tmp_path / "mean")
    mean = load_file(tmp_path / "mean" / "weights.safetensors")
    for name, value in lite.items():
        torch.testing.assert_close(mean[name], value + 0.25)
    spec = yaml.safe_load((tmp_path / "mean" / "model.yaml").read_text())
    assert spec["weights_sha256"] == sha and spec["evaluation"] == {}
    assert spec["training"]["weights_averaged"].startswith("0.75 x dfcan-sr2x-lite")


def test_models_of_different_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not the same architecture and size"):
        _script().average(LITE, FULL, 0.5, tmp_path / "mean")


def test_weights_that_do_not_match_their_model_yaml_are_refused(tmp_path: Path) -> None:
    _lite_plus_one(replaced := tmp_path / "replaced")
    (replaced / "model.yaml").write_text((LITE / "model.yaml").read_text())
    with pytest.raises(ModelLoadError, match="does not match the sha256"):
        _script().average(LITE, replaced, 0.5, tmp_path / "mean")
