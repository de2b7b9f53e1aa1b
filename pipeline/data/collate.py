"""Batches of keyframe samples: clips padded to a common size, boxes kept per sample."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from pipeline.data.transforms import IMAGENET_MEAN

# Padding with the mean colour makes the padded area exactly 0 after normalisation, i.e. "no
# signal", instead of a black border the network would see as content.
PAD_VALUE = tuple(int(round(m)) for m in IMAGENET_MEAN)


@dataclass
class Batch:
    """A collated batch.

    clips (Tensor[B, T, H, W, 3] uint8, padded to the batch's largest H, W); image_sizes
    (Tensor[B, 2] int64, (h, w) of each unpadded clip, to normalise output boxes); per-sample
    lists of pixel boxes: gt_boxes [n_i, 4], gt_labels [n_i, C] uint8, proposals [m_i, 4],
    proposal_scores [m_i]; keys: (video_id, timestamp) per sample; indices: dataset indices.
    """

    clips: torch.Tensor
    image_sizes: torch.Tensor
    gt_boxes: list[torch.Tensor]
    gt_labels: list[torch.Tensor]
    proposals: list[torch.Tensor]
    proposal_scores: list[torch.Tensor]
    keys: list[tuple[str, int]]
    indices: list[int]

    def __len__(self) -> int:
        return int(self.clips.shape[0])

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True) so the copy to CUDA can be asynchronous."""
        changed = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changed[f.name] = value.pin_memory()
            elif value and isinstance(value[0], torch.Tensor):
                changed[f.name] = [v.pin_memory() for v in value]
        return replace(self, **changed)


def collate_samples(samples: list[dict]) -> Batch:
    """Stack samples from ``KeyframeDataset``, padding clips bottom/right with the mean colour."""
    height = max(s["clip"].shape[1] for s in samples)
    width = max(s["clip"].shape[2] for s in samples)
    frames = samples[0]["clip"].shape[0]
    clips = torch.empty((len(samples), frames, height, width, 3), dtype=torch.uint8)
    clips[:] = torch.tensor(PAD_VALUE, dtype=torch.uint8)
    for i, s in enumerate(samples):
        _, h, w, _ = s["clip"].shape
        clips[i, :, :h, :w] = s["clip"]
    image_sizes = torch.tensor([[s["clip"].shape[1], s["clip"].shape[2]] for s in samples],
                               dtype=torch.int64)
    return Batch(clips=clips, image_sizes=image_sizes,
                 gt_boxes=[s["gt_boxes"] for s in samples],
                 gt_labels=[s["gt_labels"] for s in samples],
                 proposals=[s["proposals"] for s in samples],
                 proposal_scores=[s["proposal_scores"] for s in samples],
                 keys=[(s["video_id"], s["timestamp"]) for s in samples],
                 indices=[s["index"] for s in samples])


def boxes_to_rois(boxes: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample boxes [n_i, 4] -> float32 rois [sum n_i, 5] = (batch index, x1, y1, x2, y2):
    what every RoI head here takes, in training, inference, the bank and ``stad detect``."""
    if not boxes:
        return torch.zeros((0, 5))
    batch_index = torch.cat([torch.full((len(b), 1), float(i), device=b.device)
                             for i, b in enumerate(boxes)])
    return torch.cat([batch_index, torch.cat([b.float() for b in boxes])], dim=1)
