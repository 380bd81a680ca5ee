"""model.yaml: ModelSpec is an Architecture plus its records, and its file format is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from live_restore.models import (
    Architecture,
    ModelSpec,
    ModelTask,
    engines_dir,
    read_spec,
    write_spec,
)

SHIPPED = sorted(path.parent.name for path in engines_dir().glob("*/model.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_yaml_is_written_back_byte_for_byte(name: str, tmp_path: Path) -> None:
    spec = read_spec(engines_dir() / name)
    write_spec(tmp_path, spec)
    assert (tmp_path / "model.yaml").read_bytes() == (
        engines_dir() / name / "model.yaml"
    ).read_bytes()


def test_the_architecture_part_of_a_spec() -> None:
    network = Architecture(task=ModelTask.REFOCUS, architecture="refocus-unet", multiple_of=8)
    spec = ModelSpec(name="x", **dict(network), training={"steps": 1})
    assert spec.network == network and type(spec.network) is Architecture
    assert list(spec.model_dump())[:3] == ["name", "task", "architecture"]
    assert next(iter(spec.model_dump(exclude={"name"}))) == "task"
    with pytest.raises(ValidationError, match="frozen"):
        network.scale = 2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Architecture(task=ModelTask.REFOCUS, architecture="refocus-unet", name="x")  # type: ignore[call-arg]
