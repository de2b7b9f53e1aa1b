"""The ``baseline`` group: the baseline detector and its training (``pretrain_baseline``)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from pipeline.data.config import DataConfig
from pipeline.engine.config import TrainConfig
from pipeline.errors import InputError
from pipeline.models.config import ModelConfig
from pipeline.models.presets import get_preset
from pipeline.params.schema import convert


@dataclass(frozen=True)
class BaselineParams:
    """The baseline detector and how it is trained (``pretrain_baseline``).

    ``preset`` names any model preset (mmaction2 config stems, or ``tiny`` for CPU);
    ``backbone`` swaps the preset's backbone kind (checked, with the fields it uses, when the
    stage builds the model: the backbone table needs torch, which loading params never
    imports); ``model`` overrides single ModelConfig
    fields. The number of output columns always follows the label map (largest id + 1).
    """

    preset: str
    backbone: str                   # a name in pipeline.models.backbones.BACKBONES
    model: dict[str, Any]
    train: TrainConfig
    data: DataConfig
    init_checkpoint: str            # "" = random initialisation
    num_threads: int                # torch CPU threads; 0 = torch's default

    def __post_init__(self):
        # each override typed as its ModelConfig field (a tuple field's list becomes a tuple)
        hints = typing.get_type_hints(ModelConfig)
        for name in self.model:
            if name not in hints or name in ("num_classes", "backbone"):
                raise InputError("not an overridable ModelConfig field (num_classes follows "
                                 "the label map, backbone is baseline.backbone); fields: "
                                 + ", ".join(n for n in hints if n not in ("num_classes",
                                                                           "backbone")),
                                 key=f"baseline.model.{name}")
        object.__setattr__(self, "model", {
            name: convert(hints[name], value, key=f"baseline.model.{name}", path=None)
            for name, value in self.model.items()})
        self.model_config(num_classes=81)  # validates preset and overrides at load time
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")

    def model_config(self, num_classes: int) -> ModelConfig:
        """The preset, its backbone swapped, the overrides on top; a value the model config
        refuses names the params key it came from."""
        preset = get_preset(self.preset, key="baseline.preset")
        values = {**dataclasses.asdict(preset), **self.model, "backbone": self.backbone,
                  "num_classes": num_classes}
        try:
            return ModelConfig.from_dict(values)
        except ValueError as exc:   # "ModelConfig.<field>=<value>: why"
            raise InputError(str(exc), key=self._key_of(exc)) from exc

    def check_backbone(self, config: ModelConfig) -> None:
        """Build ``config``'s backbone on the meta device (no memory, no initialisation), so
        that a name missing from the backbone table, or a field the backbone refuses, fails
        before any data is read, naming its params key. Imports torch: the stage calls it,
        loading params does not."""
        import torch

        from pipeline.models.backbones import build_backbone

        try:
            with torch.device("meta"):
                build_backbone(config)
        except ValueError as exc:
            raise InputError(str(exc), key=self._key_of(exc)) from exc

    def _key_of(self, error: ValueError) -> str:
        """The params key a "ModelConfig.<field>=<value>: why" error comes from."""
        field = str(error).removeprefix("ModelConfig.").split("=", 1)[0]
        return (f"baseline.model.{field}" if field in self.model else
                "baseline.backbone" if field == "backbone" else
                f"baseline.preset (its {field})")
