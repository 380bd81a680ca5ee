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
from pathlib import Path

from safetensors.torch import save_file

from live_restore.models import file_sha256, load_network, write_spec


def average(first: Path, second: Path, weight: float, out: Path) -> str:
    """Write ``(1 - weight) * first + weight * second`` to ``out``; return its sha256."""
    # load_network checks each file against its model.yaml (sha256, tensors, shapes) first
    first_spec, first_network, _ = load_network(first)
    second_spec, second_network, _ = load_network(second)
    a, b = first_network.state_dict(), second_network.state_dict()
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise SystemExit(f"{first} and {second} are not the same architecture and size")
    mixed = {k: ((1 - weight) * a[k].double() + weight * b[k].double()).to(a[k].dtype) for k in a}
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in mixed.items()}, out / second_spec.weights_file)
    averaged = (
        f"{1 - weight:g} x {first_spec.name} (weights sha256 {first_spec.weights_sha256[:12]}..., "
        f"{first_spec.training.get('steps', '?')} steps) + {weight:g} x this entry's run "
        f"(weights sha256 {second_spec.weights_sha256[:12]}...)"
    )
    spec = second_spec.model_copy(
        update={
            "training": second_spec.training | {"weights_averaged": averaged},
            "evaluation": {},
            "weights_sha256": file_sha256(out / second_spec.weights_file),
        }
    )
    write_spec(out, spec)
    return spec.weights_sha256


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
