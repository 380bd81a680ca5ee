import shutil

import pytest
import yaml

from live_restore.models import ModelLoadError, file_sha256, load_network, model_dir, read_spec

SHIPPED = [
    "dfcan-sr2x",
    "dfcan-sr2x-lite",
    "dfcan-sr2x-tiny",
    "focus-est",
    "refocus",
    "interp-t",
    "interp-z",
    "mfsr-sr2x",
]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_load_and_say_how_they_were_made(name):
    spec, network, folder = load_network(name)
    assert spec.weights_sha256 == file_sha256(folder / spec.weights_file)
    assert spec.training["steps"] > 0 and spec.training["device"]
    assert spec.optics["pixel_um"] == pytest.approx(0.065)
    assert not network.training


@pytest.fixture
def copy_of_lite(tmp_path):
    folder = tmp_path / "lite"
    shutil.copytree(
        model_dir("dfcan-sr2x-lite"), folder, ignore=shutil.ignore_patterns("checkpoint*")
    )
    return folder


def test_corrupt_weights_are_refused_by_their_hash(copy_of_lite):
    weights = copy_of_lite / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_network(copy_of_lite)


def test_a_pickle_is_never_unpickled(copy_of_lite):
    import pickle

    weights = copy_of_lite / "weights.safetensors"
    weights.write_bytes(pickle.dumps({"not": "weights"}))
    spec = yaml.safe_load((copy_of_lite / "model.yaml").read_text())
    spec["weights_sha256"] = ""  # no hash to stop it first: the reader itself must refuse
    (copy_of_lite / "model.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ModelLoadError, match="not a readable safetensors"):
        load_network(copy_of_lite)


def test_weights_that_do_not_fit_the_architecture_are_named(copy_of_lite):
    spec = yaml.safe_load((copy_of_lite / "model.yaml").read_text())
    spec["arguments"]["features"] = 48
    (copy_of_lite / "model.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_network(copy_of_lite)


def test_a_wrong_model_yaml_is_named(copy_of_lite):
    (copy_of_lite / "model.yaml").write_text("name: x\ntask: painting\n")
    with pytest.raises(ModelLoadError, match=r"model\.yaml"):
        read_spec(copy_of_lite)
    with pytest.raises(ModelLoadError, match="shipped models"):
        load_network("no-such-model")
