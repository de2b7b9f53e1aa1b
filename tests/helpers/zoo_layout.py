"""The expected mmaction2 state-dict layouts in tests/expected_keys, and random checkpoints
built from them (test helpers shared by the model, head and checkpoint tests)."""

from collections import OrderedDict
from pathlib import Path

import torch

EXPECTED_KEYS = Path(__file__).resolve().parents[1] / "expected_keys"


def expected_layout(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of preset ``name``, as listed in ``expected_keys/<name>.txt``."""
    layout = {}
    for line in (EXPECTED_KEYS / f"{name}.txt").read_text().splitlines():
        key, shape = line.split(" ")
        layout[key] = tuple(int(v) for v in shape.strip("[]").split(",") if v)
    return layout


def random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> OrderedDict:
    """Random tensors of the layout's shapes, scaled so that deep forwards stay finite."""
    generator = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(123, dtype=torch.long)
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif len(shape) > 1 and not key.endswith("ln.weight"):  # conv / linear: by fan-in
            fan_in = torch.tensor(shape[1:]).prod().item()
            state[key] = torch.randn(shape, generator=generator) / fan_in ** 0.5
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state
