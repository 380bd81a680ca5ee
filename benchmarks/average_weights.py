"""Average the weights of two trained models of one architecture (a "model soup", WiSE-FT).

A model fine-tuned from another stays in its basin, so the straight line between the two
weight sets keeps working networks, and a point on it can keep what each end does best
(Wortsman et al., ICML 2022 and CVPR 2022). This made the shipped ``dfcan-sr2x``'s start: the
4000-step ``dfcan-sr2x-lite`` and its 6000-step fine-tune on more fields, half and half
(benchmarks/RESULTS.md). The new folder's model.yaml is the second model's, with a line that
says what was averaged; its evaluation is emptied (score the result with ``live-restore eval``).

    python benchmarks/average_weights.py engines/dfcan-sr2x-lite /tmp/lite-finetuned \\
        --weight 0.5 --out /tmp/lite-averaged
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import yaml
from safetensors.torch import load_file, save_file


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def average(first: Path, second: Path, weight: float, out: Path) -> str:
    """Write ``(1 - weight) * first + weight * second`` to ``out``; return its sha256."""
    a, b = load_file(first / "weights.safetensors"), load_file(second / "weights.safetensors")
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise SystemExit(f"{first} and {second} are not the same architecture and size")
    mixed = {k: ((1 - weight) * a[k].double() + weight * b[k].double()).to(a[k].dtype) for k in a}
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in mixed.items()}, out / "weights.safetensors")
    spec = yaml.safe_load((second / "model.yaml").read_text())
    first_spec = yaml.safe_load((first / "model.yaml").read_text())
    spec["training"]["weights_averaged"] = (
        f"{1 - weight:g} x {first_spec['name']} (weights sha256 "
        f"{_sha256(first / 'weights.safetensors')[:12]}..., {first_spec['training']['steps']} "
        f"steps) + {weight:g} x this entry's run (weights sha256 "
        f"{_sha256(second / 'weights.safetensors')[:12]}...)"
    )
    spec["evaluation"] = {}
    spec["weights_sha256"] = _sha256(out / "weights.safetensors")
    (out / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return spec["weights_sha256"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="model folder (weights.safetensors, model.yaml)")
    parser.add_argument("second", type=Path, help="model folder of the same architecture")
    parser.add_argument("--weight", type=float, default=0.5, help="share of the second")
    parser.add_argument("--out", type=Path, required=True, help="new model folder")
    options = parser.parse_args()
    if not 0.0 <= options.weight <= 1.0:
        parser.error(f"--weight must be within 0..1, got {options.weight}")
    sha = average(options.first, options.second, options.weight, options.out)
    print(f"{options.out}: weights sha256 {sha}")


if __name__ == "__main__":
    main()
