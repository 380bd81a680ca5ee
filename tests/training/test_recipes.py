"""The typed training recipes, and train_model's three steps taken one at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from live_restore.models import Architecture, ModelTask, load_network, model_dir, read_spec
from live_restore.training import (
    RECIPES,
    Loss,
    Recipe,
    SimLossTerm,
    TrainedNetwork,
    TrainResult,
    TrainSettings,
    choose_data,
    start_network,
    train_model,
    write_model,
)


def _focus_recipe(**changes: object) -> Recipe:
    return RECIPES["focus-est"].revised(**changes)


def test_a_recipe_is_built_by_keyword_and_refuses_unknown_fields() -> None:
    fields = dict(RECIPES["dfcan-sr2x-lite"])
    assert Recipe(**fields) == RECIPES["dfcan-sr2x-lite"]
    with pytest.raises(TypeError):
        Recipe(*fields.values())  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Recipe(**fields, extra={"feature_model": "focus-est"})
    with pytest.raises(ValidationError, match="frozen"):
        RECIPES["dfcan-sr2x-lite"].steps = 1  # type: ignore[misc]


def test_a_wrong_loss_name_says_which_losses_there_are() -> None:
    with pytest.raises(ValueError, match="loss: Input should be 'mse-ssim', 'mse-feature'"):
        RECIPES["dfcan-sr2x-lite"].revised(loss="perceptual")
    assert RECIPES["dfcan-sr2x-lite"].revised(loss="mse-ssim").loss is Loss.MSE_SSIM
    with pytest.raises(ValueError, match=r"sim_loss_terms\.0: Input should be 'mse-ssim'"):
        RECIPES["dfcan-sim"].revised(sim_loss_terms=("perceptual",))
    # before anything is rendered or trained
    with pytest.raises(ValueError, match=r"sim_loss_terms\.1"):
        train_model("dfcan-sim", Path("unused"), loss_terms=("mse-ssim", "perceptual"))


def test_a_loss_comes_with_its_own_options_and_task_only() -> None:
    with pytest.raises(ValueError, match="focus estimation"):
        RECIPES["dfcan-sr2x-lite"].revised(loss=Loss.DEFOCUS)
    with pytest.raises(ValueError, match="SIM reconstruction"):
        RECIPES["dfcan-sr2x-lite"].revised(loss=Loss.SIM_RECONSTRUCTION)
    with pytest.raises(ValueError, match="feature_model and feature_weight"):
        RECIPES["refocus"].revised(feature_model=None)
    with pytest.raises(ValueError, match="feature_model and feature_weight"):
        RECIPES["dfcan-sr2x-lite"].revised(feature_model="focus-est", feature_weight=0.1)
    with pytest.raises(ValueError, match="sim_loss_terms go with"):
        RECIPES["dfcan-sr2x-lite"].revised(sim_loss_terms=(SimLossTerm.FREQUENCY,))
    with pytest.raises(ValueError, match="trains on its 64 px patches"):
        _focus_recipe(patch_size_px=32)


def test_a_revised_recipe_is_validated_and_its_error_reads_plainly() -> None:
    with pytest.raises(ValueError) as error:
        _focus_recipe(photon_range=(50.0, 20.0))
    assert str(error.value) == "photon range must be 0 < low < high, got 50.0..20.0"
    revised = _focus_recipe(photon_range=(15, 40), structures=("er",))
    assert revised.photon_range == (15.0, 40.0) and revised.structures == ("er",)
    assert RECIPES["focus-est"].photon_range == (20.0, 1000.0)  # the table is untouched


def test_the_loss_is_recorded_in_words() -> None:
    assert RECIPES["dfcan-sr2x"].loss_description == "MSE + 0.1·(1 − SSIM)"
    assert RECIPES["dfcan-sim"].loss_description == "MSE + 0.1·(1 − SSIM)"
    assert RECIPES["refocus"].loss_description == "MSE + 0.05·feature loss (focus-est trunk)"
    physics = RECIPES["dfcan-sim"].revised(sim_loss_terms=tuple(SimLossTerm))
    assert "Charbonnier" in physics.loss_description and "physics prior" in (
        physics.loss_description
    )


@pytest.mark.parametrize(
    "name",
    ["dfcan-sr2x", "dfcan-sr2x-lite", "dfcan-sr2x-tiny", "dfgan-sr2x-tiny", "focus-est", "refocus"],
)
def test_each_shipped_model_is_the_network_its_recipe_names(name: str) -> None:
    spec = read_spec(model_dir(name))
    assert spec.network == RECIPES[name].network
    assert spec.training["loss"] == RECIPES[name].loss_description
    assert spec.training["description"] == RECIPES[name].description


def test_write_model_writes_the_recipes_architecture(tmp_path: Path) -> None:
    recipe = _focus_recipe(steps=3, batch_size=2)
    network, note = start_network(recipe, seed=1)
    assert note is None
    settings = TrainSettings(steps=3, batch_size=2, learning_rate=recipe.learning_rate, seed=1)
    trained = TrainedNetwork(network.eval(), settings, TrainResult(3, 1.25, 0.5, {"v": 0.1}))
    spec = write_model(recipe, trained, tmp_path, data_description="three words here")
    assert isinstance(spec.network, Architecture) and spec.network == recipe.network
    assert spec.task is ModelTask.FOCUS_ESTIMATION and spec.patch_size == 64
    written = yaml.safe_load((tmp_path / "model.yaml").read_text(encoding="utf-8"))
    assert list(written)[:3] == ["name", "task", "architecture"]
    assert written["training"]["data"] == "three words here"
    assert written["training"]["steps"] == 3 and written["training"]["seed"] == 1
    loaded, _, _ = load_network(tmp_path)
    assert loaded == spec


def test_only_super_resolution_trains_on_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="simulated data only"):
        choose_data(RECIPES["focus-est"], data=tmp_path)
