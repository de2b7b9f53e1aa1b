"""Compare the Zarr feature bank with mmaction2's pickled bank on a synthetic bank of AVA's size.

AVA train+val: ~299 videos x 897 annotated seconds x ~1.5 boxes = ~400k boxes x 2048 float16
(mmaction2's ``lfb_half``: 1.65 GB). The bench builds the same random features (float16, as
mmaction2 stores them) both ways:

- ``zarr``: a bank written with ``BankWriter`` (sharded; raw by default, ``--compressor zstd``)
  + its Parquet index;
- ``pickle``: mmaction2's layout, ``dict[video_id][timestamp] -> list of [2048] tensors``
  saved with ``torch.save`` (built in a subprocess so this process never holds it).

Then, each in a fresh subprocess, it times opening the bank plus the first batch of windows,
then 1000 random windows (window 60 s, 5 per second, batches of ``--batch``), and records peak
RSS. The pickle side samples as mmaction2 does: load the whole dict, stack each second's list,
then one Python loop per RoI over the 60 seconds with a random permutation per second, with
one torch thread (its fastest setting for these tiny copies: the default thread count made it
~50x slower on a busy 2-core machine). The Zarr side reads only the windows' rows
(``FeatureBank.windows`` with an rng: training-time sampling). ``zarr-mem`` is the Zarr bank loaded whole (``in_memory=True``). Files stay in the
page cache from the build, so both sides read warm. Temporary files are deleted at the end
unless ``--keep``. Each kind runs ``--repeats`` times, interleaved; medians are reported.

    .venv/bin/python bench/bench_lfb.py --scale 0.05      # ~20k boxes, seconds
    .venv/bin/python bench/bench_lfb.py                   # AVA size: ~3.3 GB of disk, minutes
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AVA_VIDEOS = 299          # 235 train + 64 val
AVA_SECONDS = 897         # annotated keyframes 902 ... 1798 of every video
FIRST_SECOND = 902


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """VmHWM: the peak of this process image (ru_maxrss would keep the parent's peak across
    fork + exec)."""
    return _status_mb("VmHWM")


def synthetic_boxes(videos: int, boxes_per_second: float, seed: int):
    """One row per box: every annotated second has at least one box (mmaction2's top-1
    fallback), more with a Poisson tail; a few crowded seconds exceed 5 boxes."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    video_ids = np.repeat([f"video_{i:04d}" for i in range(videos)], AVA_SECONDS)
    timestamps = np.tile(np.arange(FIRST_SECOND, FIRST_SECOND + AVA_SECONDS), videos)
    counts = 1 + rng.poisson(boxes_per_second - 1, size=len(timestamps))
    n = int(counts.sum())
    x1, y1 = rng.uniform(0, 0.5, n), rng.uniform(0, 0.5, n)
    return pd.DataFrame({
        "video_id": np.repeat(video_ids, counts), "timestamp": np.repeat(timestamps, counts),
        "x1": x1, "y1": y1, "x2": x1 + 0.4, "y2": y1 + 0.4,
        "score": rng.uniform(0.9, 1.0, n), "split": "train", "source": "proposal"})


def synthetic_features(rows, dim: int) -> np.ndarray:
    """Non-negative (post-ReLU-like) random features, reproducible per shard."""
    rng = np.random.default_rng(int(rows["row"].iloc[0]))
    return np.abs(rng.standard_normal((len(rows), dim), dtype=np.float32)).astype(np.float16)


def build_zarr(path: Path, args) -> dict:
    from pipeline.lfb.writer import BankStorage, BankWriter, fill_bank
    videos = max(1, round(AVA_VIDEOS * args.scale))
    storage = BankStorage(dim=args.dim, dtype="float16", chunk_rows=args.chunk_rows,
                          shard_rows=args.shard_rows, compressor=args.compressor,
                          clevel=args.clevel)
    writer = BankWriter(path, synthetic_boxes(videos, args.boxes_per_second, seed=0), storage)
    fill_bank(writer, lambda rows: synthetic_features(rows, args.dim), progress=False)
    return writer.finalize()


def build_pickle(bank: Path, out: Path) -> None:
    """mmaction2's bank layout from the Zarr bank's rows (run in a subprocess)."""
    import pyarrow.parquet as pq
    import torch
    from pipeline.lfb.reader import FeatureBank
    source = FeatureBank(bank)
    index = pq.read_table(bank / "index.parquet", columns=["video_id", "timestamp"])
    video_ids = index.column("video_id").to_pylist()
    timestamps = index.column("timestamp").to_numpy()
    lfb: dict[str, dict[int, list]] = {}
    step = 8192
    for start in range(0, source.num_rows, step):
        block = torch.from_numpy(np.ascontiguousarray(source.read_rows(start, start + step)))
        for i in range(len(block)):
            video = lfb.setdefault(video_ids[start + i], {})
            video.setdefault(int(timestamps[start + i]), []).append(block[i].clone())
    torch.save(lfb, out)


def random_keys(bank: Path, count: int, seed: int) -> tuple[list[str], list[int]]:
    """Keyframes of random boxes, as a training batch's RoIs would be drawn."""
    import pyarrow.parquet as pq
    index = pq.read_table(bank / "index.parquet", columns=["video_id", "timestamp"])
    rows = np.random.default_rng(seed).integers(0, index.num_rows, count)
    return (index.column("video_id").take(rows).to_pylist(),
            index.column("timestamp").take(rows).to_numpy().tolist())


def mmaction2_sample(lfb: dict, video_id: str, timestamp: int, window: int, per_second: int,
                     dim: int):
    """mmaction2's per-RoI sampling: seconds t - w/2 ... t + w/2 - 1, a random permutation of
    each second's features, the first ``per_second`` copied into zeros [window, per_second, D]."""
    import torch
    features = torch.zeros(window, per_second, dim)
    video = lfb[video_id]
    start = timestamp - window // 2
    for i, second in enumerate(range(start, start + window)):
        if second in video:
            stacked = video[second]
            chosen = torch.randperm(len(stacked))[:per_second]
            features[i, :len(chosen)] = stacked[chosen]
    return features.reshape(-1, dim)


def measure(kind: str, path: Path, keys_path: Path, args) -> dict:
    """Run in a fresh process: open, first batch, then every window; timings and peak RSS."""
    t0 = time.perf_counter()
    if kind == "pickle":
        import torch
    else:
        from pipeline.lfb.reader import FeatureBank
    import_s = time.perf_counter() - t0
    base_rss = rss_mb()
    keys = json.loads(keys_path.read_text())
    video_ids, timestamps = keys["video_ids"], keys["timestamps"]
    batches = [(video_ids[i:i + args.batch], timestamps[i:i + args.batch])
               for i in range(0, len(video_ids), args.batch)]
    window, per_second = 2 * args.window_seconds, args.max_per_second

    t0 = time.perf_counter()
    if kind == "pickle":
        torch.set_num_threads(args.torch_threads)
        torch.manual_seed(0)
        lfb = torch.load(path)
        for video in lfb.values():
            for second in video:
                video[second] = torch.stack(video[second])

        def read(batch):
            return torch.stack([mmaction2_sample(lfb, v, t, window, per_second, args.dim)
                                for v, t in zip(*batch)])
    else:
        bank = FeatureBank(path, in_memory=(kind == "zarr-mem"))
        rng = np.random.default_rng(0)

        def read(batch):
            return bank.windows(*batch, window_seconds=args.window_seconds,
                                max_per_second=per_second, rng=rng)[0]
    first = read(batches[0])
    first_batch_s = time.perf_counter() - t0
    assert tuple(first.shape) == (len(batches[0][0]), window * per_second, args.dim)
    del first

    windows_s, filled = 0.0, 0
    for batch in batches:
        t0 = time.perf_counter()
        features = read(batch)
        windows_s += time.perf_counter() - t0
        filled += int((features != 0).any(-1).sum())
        del features
    return {"kind": kind, "import_s": import_s, "first_batch_s": first_batch_s,
            "windows_s": windows_s, "windows": len(video_ids), "filled_slots": filled,
            "base_rss_mb": base_rss, "peak_rss_mb": peak_rss_mb()}


def run_child(*argv: str) -> str:
    done = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True,
                          text=True)
    return done.stdout


def print_report(runs: dict[str, list[dict]], args) -> None:
    """Each run's window time, then medians and the pickle / Zarr ratios."""
    for kind, rs in runs.items():
        print(f"{kind} {args.windows} windows s, each run: "
              + " ".join(f"{r['windows_s']:.2f}" for r in rs))
    results = {kind: {key: float(np.median([r[key] for r in rs])) for key in
                      ("import_s", "first_batch_s", "windows_s", "peak_rss_mb", "base_rss_mb")}
               for kind, rs in runs.items()}
    print(f"\nmedians of {args.repeats} runs\n{'':9} {'import s':>9} {'open+1st batch s':>17} "
          f"{args.windows} windows s {'peak RSS MB':>12} {'after imports MB':>17}")
    for kind, r in results.items():
        print(f"{kind:9} {r['import_s']:9.2f} {r['first_batch_s']:17.3f} "
              f"{r['windows_s']:{len(str(args.windows)) + 10}.2f} {r['peak_rss_mb']:12.0f} "
              f"{r['base_rss_mb']:17.0f}")
    if "pickle" not in results:
        return
    base = results["pickle"]
    print("\nratios pickle / zarr-bank (> 1: the Zarr bank is better):")
    for kind in (k for k in results if k != "pickle"):
        r = results[kind]
        grown = ((base["peak_rss_mb"] - base["base_rss_mb"])
                 / max(r["peak_rss_mb"] - r["base_rss_mb"], 1e-9))
        print(f"  {kind:9} open+first batch x{base['first_batch_s'] / r['first_batch_s']:.1f}, "
              f"{args.windows} windows x{base['windows_s'] / r['windows_s']:.2f}, "
              f"peak RSS x{base['peak_rss_mb'] / r['peak_rss_mb']:.1f} "
              f"(growth after imports x{grown:.1f})")
    filled = {r["filled_slots"] for rs in runs.values() for r in rs}
    print(f"  filled slots agree: {len(filled) == 1} ({sorted(filled)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of AVA's 299 videos")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--boxes-per-second", type=float, default=1.5)
    parser.add_argument("--chunk-rows", type=int, default=64)
    parser.add_argument("--compressor", default="none", choices=["none", "zstd"])
    parser.add_argument("--clevel", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per kind, interleaved; medians are reported")
    parser.add_argument("--shard-rows", type=int, default=8192)
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16, help="RoIs (windows) per batch")
    parser.add_argument("--window-seconds", type=int, default=30, help="window = 2x this")
    parser.add_argument("--max-per-second", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="pickle side; 1 is fastest for its many tiny copies")
    parser.add_argument("--kinds", default="zarr,zarr-mem,pickle")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the banks afterwards")
    parser.add_argument("--child", nargs=3, metavar=("ACTION", "PATH", "OTHER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        action, path, other = args.child
        if action == "build-pickle":
            build_pickle(Path(path), Path(other))
        else:
            print(json.dumps(measure(action, Path(path), Path(other), args)))
        return

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_lfb_"))
    workdir.mkdir(parents=True, exist_ok=True)
    bank, pickle_path, keys_path = workdir / "bank", workdir / "lfb_half.pkl", workdir / "keys.json"
    common = ["--dim", str(args.dim), "--batch", str(args.batch),
              "--torch-threads", str(args.torch_threads),
              "--window-seconds", str(args.window_seconds),
              "--max-per-second", str(args.max_per_second)]
    kinds = args.kinds.split(",")
    try:
        t0 = time.perf_counter()
        summary = build_zarr(bank, args)
        print(f"zarr bank: {summary['rows']} boxes x {args.dim} float16, {summary['videos']} "
              f"videos, {summary['bytes'] / 2**30:.2f} GiB on disk "
              f"(chunk {args.chunk_rows} rows, shard {args.shard_rows} rows, {args.compressor}), "
              f"built in "
              f"{time.perf_counter() - t0:.1f} s")
        if "pickle" in kinds:
            t0 = time.perf_counter()
            run_child("--child", "build-pickle", str(bank), str(pickle_path))
            print(f"pickle bank: {pickle_path.stat().st_size / 2**30:.2f} GiB, built in "
                  f"{time.perf_counter() - t0:.1f} s")
        video_ids, timestamps = random_keys(bank, args.windows, seed=1)
        keys_path.write_text(json.dumps({"video_ids": video_ids, "timestamps": timestamps}))

        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for _ in range(args.repeats):   # interleaved, so a busy machine slows every kind alike
            for kind in kinds:
                path = pickle_path if kind == "pickle" else bank
                runs[kind].append(json.loads(run_child(*common, "--child", kind, str(path),
                                                       str(keys_path))))
        print_report(runs, args)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
