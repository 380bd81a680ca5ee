"""The BioImage Model Zoo export: a package bioimageio.core's own `bioimageio test` passes,
offline, carrying our provenance; and clear errors for what cannot be exported."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

pytest.importorskip("bioimageio.core", reason="needs the bmz extra (bioimageio.core)")

from live_restore.bmz import export_bmz
from live_restore.models import ModelLoadError, model_dir, read_spec


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bmz("dfcan-sr2x-tiny", tmp_path_factory.mktemp("bmz") / "dfcan-sr2x-tiny.zip")


def test_bioimageio_test_passes_on_the_package_offline(package: Path) -> None:
    bioimageio = Path(sys.executable).parent / "bioimageio"
    result = subprocess.run(
        [str(bioimageio), "test", str(package)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" in result.stdout


def test_the_package_carries_provenance_citation_and_a_standalone_architecture(
    package: Path,
) -> None:
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        source = archive.read("architecture.py").decode()
    assert {"weights.pt", "weights.onnx", "test_input.npy", "test_output.npy"} <= names
    assert set(rdf["weights"]) == {"pytorch_state_dict", "onnx"}
    assert rdf["weights"]["onnx"]["parent"] == "pytorch_state_dict"
    shipped = read_spec(model_dir("dfcan-sr2x-tiny"))
    assert rdf["config"]["live_restore"]["weights_sha256"] == shipped.weights_sha256
    assert rdf["config"]["live_restore"]["training"]["steps"] == shipped.training["steps"]
    assert rdf["cite"][0]["doi"] == "10.1038/s41592-020-01048-5"  # DFCAN's paper
    # a zoo consumer imports the file alone: nothing of ours may be imported by it
    assert "live_restore" not in "\n".join(line for line in source.splitlines() if "import" in line)
    (scale,) = [s for s in rdf["inputs"][0]["preprocessing"] if s["id"] == "scale_range"]
    assert scale["kwargs"]["max_percentile"] == 99.9
    # 2x: the output's pixels are half the input's, in µm
    out_axes = {a["id"]: a for a in rdf["outputs"][0]["axes"] if a.get("id") in ("x", "y")}
    in_axes = {a["id"]: a for a in rdf["inputs"][0]["axes"] if a.get("id") in ("x", "y")}
    assert out_axes["x"]["size"] == 2 * in_axes["x"]["size"]
    assert out_axes["x"]["scale"] == pytest.approx(in_axes["x"]["scale"] / 2)


def test_unknown_corrupt_and_multi_frame_models_get_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "x.zip"
    with pytest.raises(ModelLoadError, match="no model 'no-such-model'"):
        export_bmz("no-such-model", out)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_dir("dfcan-sr2x-tiny"), corrupt)
    weights = corrupt / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match="does not match the sha256"):
        export_bmz(corrupt, out)
    with pytest.raises(ValueError, match="only restoration models of one input image"):
        export_bmz("interp-t", out)
    assert not out.exists()


def test_the_command_names_the_problem_in_one_line(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    result = cli("export", "bmz", "mfsr-sr2x", "--out", str(tmp_path / "m.zip"))
    assert result.exit_code != 0
    assert "mfsr-sr2x" in result.output and "cannot be exported to the zoo" in result.output


def test_a_refocus_model_exports_with_its_own_output_units_and_paper(tmp_path: Path) -> None:
    from live_restore.bmz import test_package

    package = export_bmz("refocus", tmp_path / "refocus.zip")
    passed, report = test_package(package)
    assert passed, report[-3000:]
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        readme = archive.read("README.md").decode()
    assert rdf["cite"][0]["doi"] == "10.1007/978-3-319-24574-4_28"  # U-Net
    assert "unbounded" in rdf["outputs"][0]["description"] and "unbounded" in readme
    in_x = next(a for a in rdf["inputs"][0]["axes"] if a.get("id") == "x")
    out_x = next(a for a in rdf["outputs"][0]["axes"] if a.get("id") == "x")
    assert out_x["size"] == in_x["size"]  # same grid
