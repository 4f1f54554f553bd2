"""Peak resident memory of chunked prediction: a 1,000,000-image memory-mapped file against a 20,000-image one.

Builds Fashion-MNIST-shaped uint8 ``.npy`` files (28x28x1) in a temporary folder by tiling the real test set
(1,000,000 rows: about 785 MB), then predicts each with ``ensemble.predict_chunked`` (a zoo model, the input
memory-mapped, the probabilities written to a ``.npy`` file), each in its own subprocess, and reads that
process's peak resident set size (``ru_maxrss``). Prints a table and the ratio; chunked prediction keeps one
chunk in memory, so the peak should barely grow with the number of rows.

    ZOO_DATA_DIR=../shared/data python scripts/bench_chunked_predict.py [--rows 1000000] [--small-rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_tiled(path: Path, X: np.ndarray, rows: int) -> None:
    """``rows`` images, the test set repeated, written block by block (never all in memory)."""
    header = np.lib.format.open_memmap(path, mode="w+", dtype=X.dtype, shape=(rows, *X.shape[1:]))
    offset = header.offset
    del header
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.writelines(X[: min(len(X), rows - start)].tobytes() for start in range(0, rows, len(X)))


def _measure(args) -> None:
    """In a subprocess: predict ``args.measure`` chunk by chunk; print rows, seconds, peak RSS and accuracy as JSON."""
    import ensemble
    import zoo
    from ensemble.chunked import iter_chunks

    model = zoo.load(args.model)
    X = np.load(args.measure, mmap_mode="r")
    start = time.perf_counter()
    if args.in_memory:
        X = np.load(args.measure)  # the whole array, as plain prediction needs it
        proba = zoo.predict_proba(model, X)
        np.save(args.out, proba)
    else:
        proba = ensemble.predict_chunked(model, X, chunk_size=args.chunk_size, out=args.out, progress=False)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    labels = np.load(args.labels)
    correct = sum(int(np.sum(chunk.argmax(axis=1) == labels[: len(chunk)]))  # chunks of one test set each: labels line up
                  for _, _, chunk in iter_chunks(proba, len(labels)))
    print(json.dumps({"rows": len(proba), "seconds": seconds, "peak_rss_mb": peak_mb, "accuracy": correct / len(proba)}))


def _run(script: str, file: Path, labels: Path, out: Path, args, *, in_memory: bool = False) -> dict:
    command = [sys.executable, script, "--measure", str(file), "--labels", str(labels), "--out", str(out),
               "--chunk-size", str(args.chunk_size), "--model", args.model, *(["--in-memory"] if in_memory else [])]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        sys.exit(f"measurement failed:\n{proc.stderr[-3000:]}")
    out.unlink()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large file (default: 1,000,000)")
    parser.add_argument("--small-rows", type=int, default=20_000, help="rows of the small file (default: 20,000)")
    parser.add_argument("--chunk-size", type=int, default=10_000, help="rows predicted at a time (default: 10,000)")
    parser.add_argument("--model", default="fashion_mnist_mlp", help="a zoo model for Fashion-MNIST (default: fashion_mnist_mlp)")
    parser.add_argument("--tmp", help="folder for the temporary files (default: the system's)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return _measure(args)

    import zoo

    X, y = zoo.datasets.load("fashion_mnist", "test")
    rows_list = [args.small_rows, args.rows]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-chunked-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        np.save(tmp / "labels.npy", y)
        for rows in rows_list:
            _write_tiled(tmp / f"x{rows}.npy", X, rows)
        small = tmp / f"x{args.small_rows}.npy"
        results.append(("in memory (np.load + predict)", args.small_rows, _run(__file__, small, tmp / "labels.npy", tmp / "p.npy", args, in_memory=True)))
        for rows in rows_list:
            file = tmp / f"x{rows}.npy"
            print(f"predicting {rows:,} rows ({file.stat().st_size / 1e6:,.0f} MB) ...", file=sys.stderr)
            results.append((f"chunked ({args.chunk_size:,} rows)", rows, _run(__file__, file, tmp / "labels.npy", tmp / "p.npy", args)))

    print(f"\nPeak resident memory of prediction with {args.model}, each run in its own process\n")
    print(f"{'method':<30} {'rows':>10} {'input MB':>9} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12} {'accuracy':>9}")
    for label, rows, r in results:
        print(f"{label:<30} {rows:>10,} {rows * 784 / 1e6:>9,.0f} {r['seconds']:>8.1f} {rows / r['seconds']:>9,.0f} "
              f"{r['peak_rss_mb']:>12,.0f} {r['accuracy']:>9.4f}")
    small, large = results[1][2]["peak_rss_mb"], results[2][2]["peak_rss_mb"]
    print(f"\npeak RSS, {args.rows:,} rows vs {args.small_rows:,}: {large:,.0f} MB vs {small:,.0f} MB, "
          f"ratio {large / small:.3f} (+{large - small:,.0f} MB for {args.rows / args.small_rows:.0f}x the rows)")


if __name__ == "__main__":
    main()
