"""Data loading: real mp4 -> frame store (extract_frames) -> KeyframeDataset -> DataLoader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.ava.annotations import merge_boxes
from pipeline.data.collate import Batch, boxes_to_rois, collate_samples
from pipeline.data.dataset import KeyframeDataset, check_clip_reach
from pipeline.proposals.table import filter_proposals
from pipeline.data.loader import make_loader
from pipeline.data.sampler import EpochBatchSampler
from pipeline.data.transforms import (ClipSample, Flip, RandomCrop, eval_transform, normalize_clips,
                                      train_transform)
from pipeline.data.collate import PAD_VALUE
from pipeline.errors import InputError
from pipeline.frames.spec import clip_offsets, clip_reach
from pipeline.frames.store import FrameStore
from helpers.tiny_data import FPS, TinyData, build_tiny_data
from helpers.video import read_frame_number


def tiny_dataset(data: TinyData, split: str, transform, *, frames_per_clip: int = 4,
                 frame_interval: int = 4, exclusions: bool = False,
                 temporal_jitter: bool = False) -> KeyframeDataset:
    from pipeline.ava.annotations import read_annotations
    from pipeline.ava.exclusions import read_exclusions

    boxes, labels = merge_boxes(read_annotations(data.annotations[split], data.label_map),
                                data.label_map)
    return KeyframeDataset(
        data.frames_dir, pd.read_parquet(data.keyframes_path), boxes=boxes, labels=labels,
        proposals=pd.read_parquet(data.proposals_path),
        exclusions=read_exclusions(data.exclusions[split]) if exclusions else None,
        split=split, frames_per_clip=frames_per_clip, frame_interval=frame_interval,
        transform=transform, num_classes=data.label_map.num_classes,
        temporal_jitter=temporal_jitter)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> TinyData:
    return build_tiny_data(tmp_path_factory.mktemp("tiny"))


def test_clip_is_read_around_the_keyframe_at_any_sampling(data):
    """The store keeps frames, not clips: 4x4 and 8x1 read from the same store, the keyframe at
    position clip_len // 2 (reach (8, 6) holds both)."""
    ds = tiny_dataset(data, "train", eval_transform(short_side=64))
    sample = ds[3]
    key_frame = sample["timestamp"] * FPS   # stored with timestamp_start 0, pyslowfast clock
    numbers = [read_frame_number(f) for f in sample["clip"].numpy()]
    assert numbers == [key_frame - 8, key_frame - 4, key_frame, key_frame + 4]
    assert sample["clip"].dtype == torch.uint8 and sample["clip"].shape == (4, 64, 80, 3)
    dense = tiny_dataset(data, "train", eval_transform(short_side=64), frames_per_clip=8,
                         frame_interval=1)[3]
    assert [read_frame_number(f) for f in dense["clip"].numpy()] == list(range(key_frame - 4,
                                                                               key_frame + 4))


@pytest.fixture(scope="module")
def jitter_data(tmp_path_factory) -> TinyData:
    """A store reaching what a jittered 4x4 clip reads (10 frames before, 5 after)."""
    return build_tiny_data(tmp_path_factory.mktemp("jitter"), reach=clip_reach(4, 4, True))


def test_temporal_jitter_moves_each_frame_on_its_own_as_mmaction2(jitter_data):
    """Interval 4: each frame moves by its own draw from [-2, 2), fresh per epoch seed and the
    same for the same (seed, index); without jitter the same store gives the nominal clip."""
    transform = eval_transform(short_side=64)
    jittered = tiny_dataset(jitter_data, "train", transform, temporal_jitter=True)
    nominal = np.array([-8, -4, 0, 4])
    moves = []
    for seed in range(40):
        sample = jittered[(2, seed)]
        shown = np.array([read_frame_number(f) for f in sample["clip"].numpy()])
        moves.append(shown - (sample["timestamp"] * FPS + nominal))
    moves = np.array(moves)
    assert set(np.unique(moves)) == {-2, -1, 0, 1}
    assert (moves != moves[:, :1]).any(axis=1).mean() > 0.5   # per frame, not one per clip
    torch.testing.assert_close(jittered[(2, 7)]["clip"], jittered[(2, 7)]["clip"])
    plain = tiny_dataset(jitter_data, "train", transform)
    sample = plain[(2, 7)]
    assert [read_frame_number(f) for f in sample["clip"].numpy()] == list(
        sample["timestamp"] * FPS + nominal)
    val = tiny_dataset(jitter_data, "val", transform)   # every split is stored alike
    assert [read_frame_number(f) for f in val[0]["clip"].numpy()] == list(
        val[0]["timestamp"] * FPS + nominal)


def test_jitter_needs_a_store_reaching_its_span(data, jitter_data):
    check_clip_reach(FrameStore(jitter_data.frames_dir), 4, 4, temporal_jitter=True)
    check_clip_reach(FrameStore(data.frames_dir), 4, 4)           # (8, 4) of (8, 6) without
    with pytest.raises(InputError, match=r"frames.reach \[8, 6\]") as info:
        check_clip_reach(FrameStore(data.frames_dir), 4, 4, temporal_jitter=True)
    assert info.value.key == "frames.reach" and "10 frames before" in str(info.value)
    with pytest.raises(InputError, match="frames.reach"):         # 8x8 reads (32, 24)
        check_clip_reach(FrameStore(data.frames_dir), 8, 8)
    # a jittered read beyond the store's frames is an error naming the frame, never a wrong one
    ds = tiny_dataset(data, "train", eval_transform(short_side=64), temporal_jitter=True)
    assert (ds.video_ids[0], ds.timestamps[0]) == ("vid0", 1)     # keyframe frame 10: 2..16 kept
    with pytest.raises(InputError, match="timeline frame 0 is not in the store") as info:
        ds.read_clip(0, jitter=np.array([-2, 0, 0, 0]))
    assert info.value.key == "frames.reach"


def test_clip_offsets_and_reach():
    assert clip_offsets(8, 2).tolist() == [-8, -6, -4, -2, 0, 2, 4, 6]
    assert clip_offsets(4, 16).tolist() == [-32, -16, 0, 16]
    assert clip_reach(8, 2, False) == (8, 6)
    assert clip_reach(4, 4, True) == (10, 5)      # jitter [-2, 2) on -8..4
    assert clip_reach(1, 1, False) == (0, 0)


def test_boxes_are_pixels_of_the_stored_frame_and_labels_follow(data):
    ds = tiny_dataset(data, "train", eval_transform(short_side=64))
    from pipeline.ava.annotations import read_annotations

    table = read_annotations(data.annotations["train"])
    sample = ds[0]
    rows = table[(table["video_id"] == sample["video_id"]) & (table["timestamp"] == sample["timestamp"])]
    expected = np.unique(rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32), axis=0) * [80, 64, 80, 64]
    got = np.unique(sample["gt_boxes"].numpy(), axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    for box, label in zip(sample["gt_boxes"].numpy(), sample["gt_labels"].numpy()):
        match = rows[np.isclose(rows["x1"] * 80, box[0]) & np.isclose(rows["y1"] * 64, box[1])]
        assert sorted(data.label_map.ids[k] for k in np.flatnonzero(label)) == sorted(match["action_id"])
    assert len(sample["proposals"]) >= 1


def test_eval_transform_resizes_short_side_and_scales_boxes(data):
    ds = tiny_dataset(data, "val", eval_transform(short_side=32))
    ref = tiny_dataset(data, "val", eval_transform(short_side=64))
    small, big = ds[1], ref[1]
    assert small["clip"].shape == (4, 32, 40, 3)
    torch.testing.assert_close(small["gt_boxes"], big["gt_boxes"] / 2)
    torch.testing.assert_close(small["proposals"], big["proposals"] / 2)


def _painted_sample(box: list[float]) -> ClipSample:
    """A grey clip with one red rectangle exactly where the box is."""
    clip = torch.full((2, 60, 90, 3), 100, dtype=torch.uint8)
    x1, y1, x2, y2 = map(int, box)
    clip[:, y1:y2, x1:x2] = torch.tensor([250, 0, 0], dtype=torch.uint8)
    boxes = torch.tensor([box], dtype=torch.float32)
    return ClipSample(clip=clip, gt_boxes=boxes, gt_labels=torch.tensor([[1, 0, 1]], dtype=torch.uint8),
                      proposals=boxes.clone(), proposal_scores=torch.ones(1))


@pytest.mark.parametrize("seed", range(8))
def test_random_augmentation_keeps_boxes_on_their_content(seed):
    sample = _painted_sample([30.0, 10.0, 60.0, 40.0])
    out = train_transform(short_side_range=(60, 90), crop_size=56, flip_p=0.5)(
        sample, np.random.default_rng(seed))
    h, w = out.clip.shape[1:3]
    assert (h, w) == (56, 56)
    for boxes in (out.gt_boxes, out.proposals):
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
        assert ((boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)).all()
    for box in out.gt_boxes:
        x1, y1, x2, y2 = box.round().int().tolist()
        inner = out.clip[0, y1 + 2:y2 - 2, x1 + 2:x2 - 2].float()
        if inner.numel():
            assert inner[..., 0].mean() > 200 and inner[..., 1].mean() < 50  # still the red patch
    assert len(out.gt_labels) == len(out.gt_boxes)


def test_random_crop_drops_boxes_left_outside_and_their_labels():
    clip = torch.zeros((1, 100, 100, 3), dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [60.0, 60.0, 100.0, 100.0]])
    labels = torch.tensor([[1, 0], [0, 1]], dtype=torch.uint8)
    sample = ClipSample(clip=clip, gt_boxes=boxes, gt_labels=labels, proposals=boxes.clone(),
                        proposal_scores=torch.tensor([0.5, 0.9]))

    class FixedRng:  # the crop's top-left corner at (50, 50)
        def integers(self, low, high):
            return 50

    out = RandomCrop(50)(sample, FixedRng())
    torch.testing.assert_close(out.gt_boxes, torch.tensor([[10.0, 10.0, 50.0, 50.0]]))
    torch.testing.assert_close(out.gt_labels, labels[1:])
    torch.testing.assert_close(out.proposal_scores, torch.tensor([0.9]))


def test_flip_mirrors_pixels_and_boxes():
    sample = _painted_sample([10.0, 5.0, 30.0, 25.0])
    out = Flip(p=1.0)(sample, np.random.default_rng(0))
    torch.testing.assert_close(out.clip, sample.clip.flip(2))
    torch.testing.assert_close(out.gt_boxes, torch.tensor([[60.0, 5.0, 80.0, 25.0]]))
    back = Flip(p=1.0)(out, np.random.default_rng(0))
    torch.testing.assert_close(back.gt_boxes, sample.gt_boxes)


def test_augmentation_depends_on_sample_and_epoch_seed_only(data):
    ds = tiny_dataset(data, "train", train_transform(short_side_range=(48, 80), crop_size=48))
    a, b = ds[(2, 7)], ds[(2, 7)]
    torch.testing.assert_close(a["clip"], b["clip"])
    torch.testing.assert_close(a["gt_boxes"], b["gt_boxes"])
    others = [ds[(2, s)] for s in range(8, 14)]
    assert any(o["clip"].shape != a["clip"].shape or not torch.equal(o["clip"], a["clip"])
               for o in others)


def test_loader_with_workers_yields_the_same_batches_as_without(data):
    ds = tiny_dataset(data, "train", train_transform(short_side_range=(48, 80), crop_size=48))
    batches = {}
    for workers in (0, 2):
        sampler = EpochBatchSampler(len(ds), 3, seed=5)
        sampler.set_epoch(1)
        batches[workers] = list(make_loader(ds, batch_sampler=sampler, num_workers=workers))
    assert len(batches[0]) == len(ds) // 3
    for b0, b2 in zip(batches[0], batches[2]):
        assert b0.keys == b2.keys
        torch.testing.assert_close(b0.clips, b2.clips)
        for x, y in zip(b0.gt_boxes, b2.gt_boxes):
            torch.testing.assert_close(x, y)


def test_sampler_shards_cover_every_sample_and_resume_skips_done_batches():
    n, world = 23, 3
    shards = []
    for rank in range(world):
        s = EpochBatchSampler(n, 4, seed=1, rank=rank, world_size=world, drop_last=False)
        s.set_epoch(2)
        shards.append([i for batch in s for i, _ in batch])
    assert len({len(x) for x in shards}) == 1                     # same steps on every rank
    assert set().union(*map(set, shards)) == set(range(n))
    assert sum(map(len, shards)) == n + 1                          # one padded repeat
    s = EpochBatchSampler(n, 4, seed=1)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3, start_batch=2)
    assert list(s) == full[2:] and len(s) == len(full) - 2
    s.set_epoch(4)
    assert list(s) != full                                          # reshuffled per epoch


def test_collate_pads_with_mean_colour_and_builds_rois():
    def sample(h, w, n):
        return {"clip": torch.full((2, h, w, 3), 7, dtype=torch.uint8),
                "gt_boxes": torch.ones((n, 4)), "gt_labels": torch.ones((n, 3), dtype=torch.uint8),
                "proposals": torch.ones((n + 1, 4)), "proposal_scores": torch.ones(n + 1),
                "video_id": "v", "timestamp": h, "index": n}

    batch = collate_samples([sample(4, 6, 1), sample(5, 3, 2)])
    assert isinstance(batch, Batch) and batch.clips.shape == (2, 2, 5, 6, 3)
    assert batch.image_sizes.tolist() == [[4, 6], [5, 3]]
    assert batch.clips[0, :, 4].eq(torch.tensor(PAD_VALUE, dtype=torch.uint8)).all()
    assert batch.clips[1, :, :, 3:].eq(torch.tensor(PAD_VALUE, dtype=torch.uint8)).all()
    assert batch.clips[1, :, :, :3].eq(7).all()
    rois = boxes_to_rois(batch.proposals)
    assert rois.shape == (5, 5) and rois[:, 0].tolist() == [0, 0, 1, 1, 1]
    normalised = normalize_clips(batch.clips)
    assert normalised.shape == (2, 3, 2, 5, 6)
    assert normalised[0, :, :, 4].abs().max() < 0.01                # padding is ~0 after normalising


def test_filter_proposals_keeps_best_box_and_caps():
    table = pd.DataFrame({"video_id": ["a"] * 4 + ["b"] * 2, "timestamp": [1] * 6,
                          "x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0,
                          "score": [0.95, 0.5, 0.99, 0.91, 0.3, 0.2]})
    kept = filter_proposals(table, min_score=0.9, max_per_keyframe=2)
    assert kept[kept["video_id"] == "a"]["score"].tolist() == [0.99, 0.95]
    assert kept[kept["video_id"] == "b"]["score"].tolist() == [0.3]


def test_keyframe_without_proposals_gets_the_whole_frame(data):
    boxes = pd.DataFrame({"video_id": ["vid0"], "timestamp": [2], "x1": [0.1], "y1": [0.1],
                          "x2": [0.5], "y2": [0.5], "person_id": [0]})
    ds = KeyframeDataset(data.frames_dir, pd.read_parquet(data.keyframes_path), boxes=boxes,
                         labels=np.ones((1, 3), np.uint8), proposals=None, split="train",
                         frames_per_clip=2, frame_interval=2, transform=eval_transform(short_side=64),
                         num_classes=3)
    torch.testing.assert_close(ds[0]["proposals"], torch.tensor([[0.0, 0.0, 80.0, 64.0]]))


def test_exclusions_drop_keyframes(data):
    full = tiny_dataset(data, "train", eval_transform(short_side=64))
    kept = tiny_dataset(data, "train", eval_transform(short_side=64), exclusions=True)
    assert len(kept) == len(full) - 1
    assert ("vid0", 6) not in set(zip(kept.video_ids, kept.timestamps))


def test_annotated_keyframe_missing_from_store_names_it(data):
    boxes = pd.DataFrame({"video_id": ["vid0", "ghost"], "timestamp": [2, 4], "x1": 0.1,
                          "y1": 0.1, "x2": 0.5, "y2": 0.5, "person_id": 0})
    with pytest.raises(InputError, match=r"frames.zarr.*ghost,4"):
        KeyframeDataset(data.frames_dir, pd.read_parquet(data.keyframes_path), boxes=boxes,
                        labels=np.ones((2, 3), np.uint8), proposals=None, split=None,
                        frames_per_clip=2, frame_interval=2, transform=eval_transform(short_side=64),
                        num_classes=3)


def test_store_opens_lazily_in_each_process(data):
    ds = tiny_dataset(data, "val", eval_transform(short_side=64))
    assert ds._frame_store is None                                  # nothing opened before fork
    ds[0]
    assert isinstance(ds._frame_store, FrameStore)
    import pickle

    assert pickle.loads(pickle.dumps(ds))._frame_store is None
