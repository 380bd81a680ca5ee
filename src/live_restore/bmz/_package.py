"""A trained model as a BioImage Model Zoo package (bioimageio.spec 0.5), tested offline.

What goes in:
- ``pytorch_state_dict``: the weights as a plain state dict (``torch.save`` of tensors only,
  which bioimageio.core reads with ``weights_only=True``; the format requires it, our own files
  stay safetensors) and the architecture source assembled by ``_source.py``;
- ``onnx``, converted from it (``parent: pytorch_state_dict``), at the package's tile size;
- a test input simulated by the project's microscope (raw camera counts, float32) and the
  network's output for it;
- preprocessing that is our normalisation (``scale_range``: the 0.1 and 99.9 percentiles of the
  frame to 0 and 1), so a consumer feeds raw counts;
- documentation (what the output means, how it was trained and measured, its limits), the
  method's citation, a cover, and our model.yaml in ``config.live_restore``.

The output is in network units (DFCAN's sigmoid: 0-1; the refocus U-Net's residual output is
unbounded, 0-1 spanning the input's percentiles), not counts: our inverse map to counts needs
the input's percentiles, which the spec's postprocessing cannot reference. The documentation
says how to get counts back.

Tensors are of one fixed size (``TILE_PX``): the ONNX graph is traced per size (the Fourier
attention's DFT matrices are constants), and a zoo consumer tiles larger images.
"""

from __future__ import annotations

import contextlib
import gc
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from live_restore.models import ModelSpec, ModelTask, load_network
from live_restore.models import dfcan as dfcan_module
from live_restore.models import fourier as fourier_module
from live_restore.models import unet as unet_module

from ._source import architecture_source

__all__ = ["EXPORTABLE_TASKS", "TILE_PX", "export_bmz", "test_package"]

TILE_PX = 128
EXPORTABLE_TASKS = (ModelTask.SUPER_RESOLUTION, ModelTask.REFOCUS, ModelTask.SIM_RECONSTRUCTION)
_TEST_PHOTONS = 50.0
_TEST_SEED = 7  # a sample the training never rendered (training seeds start at 0 per field)


@dataclass(frozen=True)
class _Method:
    """What a zoo user needs to know of an architecture: its source, callable and paper."""

    modules: list[Any]
    callable: str
    citation: str
    doi: str


_METHODS = {
    "dfcan": _Method(
        [fourier_module, dfcan_module],
        "DFCAN",
        "Qiao C., Li D., Guo Y., et al. Evaluation and development of deep neural networks for "
        "image super-resolution in optical microscopy. Nature Methods 18, 194-202 (2021).",
        "10.1038/s41592-020-01048-5",
    ),
    "refocus-unet": _Method(
        [unet_module],
        "RefocusUNet",
        "Ronneberger O., Fischer P., Brox T. U-Net: Convolutional Networks for Biomedical Image "
        "Segmentation. MICCAI 2015.",
        "10.1007/978-3-319-24574-4_28",
    ),
}


_OUTPUT_UNITS = {
    "dfcan": "0-1, a sigmoid",
    "refocus-unet": "unbounded; 0 and 1 are the input's 0.1 and 99.9 percentiles",
}


def _test_input(spec: ModelSpec) -> np.ndarray:
    """Simulated raw counts for the model's task, (1, C, TILE_PX, TILE_PX) float32."""
    from live_restore.simulate import CameraParams, expose
    from live_restore.training import render_fields, render_sim_fields

    camera, rng = CameraParams(), np.random.default_rng(_TEST_SEED)
    if spec.task is ModelTask.SIM_RECONSTRUCTION:
        (sim,) = render_sim_fields(["microtubules"], 1, TILE_PX, _TEST_SEED)
        frames = [expose(f * _TEST_PHOTONS, camera, rng) for f in sim.raw]
        return np.stack(frames)[None].astype(np.float32)
    # refocus gets a plane 1 µm out of focus: what it is for
    defocus_um = 1.0 if spec.task is ModelTask.REFOCUS else 0.0
    (stack,) = render_fields(["microtubules"], 1, TILE_PX, _TEST_SEED, (defocus_um,))
    counts: np.ndarray = expose(stack.widefield[0] * _TEST_PHOTONS, camera, rng)
    return counts[None, None].astype(np.float32)


def _normalised(counts: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The zoo's ``scale_range`` over (channel, y, x), as its consumers will compute it."""
    n = spec.normalisation
    low, high = np.percentile(counts, [n.low_percentile, n.high_percentile])
    scaled: np.ndarray = ((counts - low) / (high - low + 1e-6)).astype(np.float32)
    return scaled


def _documentation(spec: ModelSpec, method: _Method) -> str:
    training = spec.training
    evaluation = yaml.safe_dump(spec.evaluation, sort_keys=False) if spec.evaluation else "none"
    units = spec.normalisation.output_range
    return f"""# {spec.name}

{training.get("description", spec.architecture)} ({spec.task}, exported by live-restore).

## Input and output
- Input: one raw widefield camera frame in counts (float32), {TILE_PX}x{TILE_PX} px; a SIM model
  takes its 9 raw frames as channels. Preprocessing maps the frame's 0.1 and 99.9 percentiles to
  0 and 1 (`scale_range`): feed raw counts, not a normalised image.
- Output: {spec.scale}x the input's pixels per side, in network units
  ({_OUTPUT_UNITS[spec.architecture]}). To get counts back:
  `low + {units:g} * (high - low) * output`, with `low` and `high` the input's 0.1 and 99.9
  percentiles.
- Pixel size: trained for {spec.optics.get("pixel_um", "?")} µm camera pixels at NA
  {spec.optics.get("na", "?")}, {spec.optics.get("emission_wavelength_nm", "?")} nm emission.

## Training
Data: {training.get("data", "?")}.
Loss: {training.get("loss", "?")}. Steps: {training.get("steps", "?")}, on
{training.get("device", "?")}.

## Held-out evaluation (simulated, seeds never trained on)
```
{evaluation}```

## Limits
Trained on a physically simulated microscope only, not on real cells: check it against a
ground truth from your own instrument before trusting it. At low light a restoration network
can paint structure that is not in the sample; live-restore's trust map (`with_trust`) measures
where, this package does not.

## Citation
{method.citation}
"""


def _cover(counts: np.ndarray, output: np.ndarray, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=80)
    for axis, image, title in zip(
        axes, (counts[0, 0], output[0, 0]), ("raw counts", "restored"), strict=True
    ):
        axis.imshow(image, cmap="gray")
        axis.set_title(title)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def export_bmz(name: str | Path, out: Path) -> Path:
    """Write ``name`` (a shipped model or folder) as a zoo package at ``out`` (.zip).

    ValueError for a model that cannot be packaged; ModelLoadError for an unknown name or
    corrupt weights (from :func:`load_network`).
    """
    with _their_open_files_closed():
        return _export(name, out)


@contextlib.contextmanager
def _their_open_files_closed() -> Iterator[None]:
    """Close the files bioimageio leaves open, without their ResourceWarning.

    bioimageio.spec 0.5.12 and bioimageio.core 0.11 open files to hash or read them and leave
    them to the garbage collector (a ResourceWarning at some later collection, anywhere); they
    are collected here instead, where the warning is known and harmless.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


def _export(name: str | Path, out: Path) -> Path:
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bmz

    from live_restore.inference import OPSET, export_onnx

    if out.suffix != ".zip":  # before loading anything
        raise ValueError(f"the package is a .zip file, not {out.name}")
    spec, network, _ = load_network(name)
    if spec.task not in EXPORTABLE_TASKS or spec.architecture not in _METHODS:
        raise ValueError(
            f"{spec.name} ({spec.task}, {spec.architecture}) cannot be exported to the zoo: "
            f"only restoration models of one input image are ({', '.join(EXPORTABLE_TASKS)}; "
            "a SIM raw set counts as one image of 9 channels), not focus estimation, "
            "interpolation or multi-frame SR"
        )
    method = _METHODS[spec.architecture]
    counts = _test_input(spec)
    with torch.no_grad():
        output = network(torch.from_numpy(_normalised(counts, spec))).numpy()
    channels = counts.shape[1]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        np.save(folder / "test_input.npy", counts)
        np.save(folder / "test_output.npy", output)
        torch.save(network.state_dict(), folder / "weights.pt")
        (folder / "architecture.py").write_text(
            architecture_source(method.modules), encoding="utf-8"
        )
        export_onnx(network, folder / "weights.onnx", counts.shape)
        (folder / "README.md").write_text(_documentation(spec, method), encoding="utf-8")
        cover = _cover(counts, output, folder / "cover.png")
        pixel_um = float(spec.optics.get("pixel_um", 1.0))
        space = [bmz.AxisId("y"), bmz.AxisId("x")]
        inputs = bmz.InputTensorDescr(
            id=bmz.TensorId("raw"),
            description="raw camera counts",
            axes=[
                bmz.BatchAxis(),
                bmz.ChannelAxis(channel_names=[bmz.Identifier(f"raw{i}") for i in range(channels)]),
                *(
                    bmz.SpaceInputAxis(id=a, size=TILE_PX, scale=pixel_um, unit="micrometer")
                    for a in space
                ),
            ],
            test_tensor=bmz.FileDescr(source=folder / "test_input.npy"),
            preprocessing=[
                bmz.ScaleRangeDescr(
                    kwargs=bmz.ScaleRangeKwargs(
                        axes=[bmz.AxisId("channel"), *space],
                        min_percentile=spec.normalisation.low_percentile,
                        max_percentile=spec.normalisation.high_percentile,
                    )
                )
            ],
        )
        side = TILE_PX * spec.scale
        outputs = bmz.OutputTensorDescr(
            id=bmz.TensorId("restored"),
            description=f"restored image in network units ({_OUTPUT_UNITS[spec.architecture]}); "
            "see the documentation",
            axes=[
                bmz.BatchAxis(),
                bmz.ChannelAxis(channel_names=[bmz.Identifier("restored")]),
                *(
                    bmz.SpaceOutputAxis(
                        id=a, size=side, scale=pixel_um / spec.scale, unit="micrometer"
                    )
                    for a in space
                ),
            ],
            test_tensor=bmz.FileDescr(source=folder / "test_output.npy"),
        )
        version = bmz.Version(torch.__version__.split("+")[0])
        descr = bmz.ModelDescr(
            name=spec.name,
            description=str(spec.training.get("description", spec.task))[:1000],
            authors=[bmz.Author(name="live-restore developers")],
            cite=[bmz.CiteEntry(text=method.citation, doi=bmz.Doi(method.doi))],
            license=bmz.LicenseId("BSD-3-Clause"),
            documentation=bmz.FileDescr(source=folder / "README.md"),
            covers=[bmz.FileDescr(source=cover)],
            tags=[
                "super-resolution" if spec.scale > 1 else "restoration",
                "fluorescence",
                "widefield",
                "live-restore",
                str(spec.task),
            ],
            inputs=[inputs],
            outputs=[outputs],
            weights=bmz.WeightsDescr(
                pytorch_state_dict=bmz.PytorchStateDictWeightsDescr(
                    source=folder / "weights.pt",
                    architecture=bmz.ArchitectureFromFileDescr(
                        source=folder / "architecture.py",
                        callable=bmz.Identifier(method.callable),
                        kwargs=dict(spec.arguments),
                    ),
                    pytorch_version=version,
                ),
                onnx=bmz.OnnxWeightsDescr(
                    source=folder / "weights.onnx",
                    opset_version=OPSET,
                    parent="pytorch_state_dict",
                ),
            ),
            config=bmz.Config(live_restore=spec.model_dump(mode="json")),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(save_bioimageio_package(descr, output_path=out))


def test_package(path: Path) -> tuple[bool, str]:
    """bioimageio.core's own test of a package, offline: (passed, its summary as text)."""
    from bioimageio.core import test_model

    with _their_open_files_closed():
        summary = test_model(path)
        return summary.status == "passed", summary.format()
