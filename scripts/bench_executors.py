#!/usr/bin/env python
"""Time a 4-unit board through the in-process and the Ray executor (docs/performance.md).

The board: smollm2-135m, DiffMean vector, a short grid (m = 0 and 4), 4 concepts cut to their
first --train-pairs training and --pairs test pairs (default 25 and 10; a suite copy in a scratch
folder), so a unit is one concept's training (mean activations) and its 2-strength sweep.
One invocation times one configuration and appends a JSON record to --out:

    .venv/bin/python scripts/bench_executors.py --executor inprocess --threads 2 --out runs/bench-exec.json
    .venv/bin/python scripts/bench_executors.py --executor ray --workers 1 --threads 2 --out runs/bench-exec.json
    .venv/bin/python scripts/bench_executors.py --executor ray --workers 2 --threads 1 --out runs/bench-exec.json
    .venv/bin/python scripts/bench_executors.py --report runs/bench-exec.json

Phases: ``start`` (Ray: ray.init and the actors; in process: nothing), ``prepare`` (loading the
model where it runs, provenance, run.json), ``units`` (first unit handed out to the last result,
results.csv included) and ``close``. ``compute`` is the sum over units of their recorded
training + scoring seconds (timings/); ``units × workers − compute`` per unit is the scheduling overhead
(handing the unit out, loading the concept, writing files; with several workers, each worker's
first model load lands here too). Time it alone: other torch jobs on the cores skew everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

CONCEPTS = ["ocean", "optimism", "power_seeking", "sycophancy"]


def short_suite(root: Path, pairs: int, train_pairs: int) -> Path:
    from steer_pu.paths import default_suite_dir

    suite = root / "suite"
    for name in CONCEPTS:
        source, target = default_suite_dir() / name, suite / name
        target.mkdir(parents=True)
        shutil.copy(source / "card.yaml", target / "card.yaml")
        for split, n in (("train", train_pairs), ("test", pairs)):
            lines = (source / f"{split}.jsonl").read_text().splitlines(keepends=True)[:n]
            (target / f"{split}.jsonl").write_text("".join(lines))
    return suite


class Timed:
    """An executor whose prepare and run phases are timed."""

    def __init__(self, inner, seconds: dict):
        self.inner, self.seconds = inner, seconds

    def prepare(self, jobs):
        t = time.perf_counter()
        try:
            return self.inner.prepare(jobs)
        finally:
            self.seconds["prepare"] = time.perf_counter() - t

    def run(self, tasks, on_file):
        t = time.perf_counter()
        try:
            return self.inner.run(tasks, on_file)
        finally:
            self.seconds["units"] = time.perf_counter() - t

    def close(self):
        self.inner.close()


def measure(args: argparse.Namespace) -> dict:
    from steer_pu.runs.executors import Job, execute_jobs, make_executor
    from steer_pu.runs.run import RunConfig

    scratch = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    try:
        suite = short_suite(scratch, args.pairs, args.train_pairs)
        config = RunConfig(
            model="smollm2-135m", method="diffmean", form="vector", layer=15, concepts=CONCEPTS,
            strengths=[0.0, 4.0], suite_dir=str(suite), threads=args.threads, token_budget=4096, device="cpu",
        )  # fmt: skip
        seconds: dict = {}
        wall = time.perf_counter()
        t = time.perf_counter()
        executor = make_executor(args.executor, args.threads, "cpu", None, args.workers)
        seconds["start"] = time.perf_counter() - t
        timed = Timed(executor, seconds)
        try:
            execute_jobs([Job(config, scratch / "run")], timed)
        finally:
            t = time.perf_counter()
            timed.close()
            seconds["close"] = time.perf_counter() - t
        seconds["wall"] = time.perf_counter() - wall
        compute = []
        for name in CONCEPTS:
            record = json.loads((scratch / "run" / "timings" / f"{name}.diffmean-vector.json").read_text())
            compute.append(record["fit_wall_s"] + record["score_wall_s"])
        seconds["compute"] = sum(compute)
        workers = 1 if args.executor == "inprocess" else args.workers
        return {
            "executor": args.executor, "workers": workers, "threads": args.threads, "n_units": len(CONCEPTS),
            "test_pairs": args.pairs, "train_pairs": args.train_pairs, "strengths": [0, 4], "model": "smollm2-135m",
            "cpus": os.cpu_count(),
            "unit_compute_s": [round(c, 2) for c in compute],
            **{k: round(v, 2) for k, v in seconds.items()},
            # worker-seconds of the units phase not spent training or scoring, per unit
            "overhead_per_unit_s": round((seconds["units"] * workers - seconds["compute"]) / len(CONCEPTS), 2),
            "when": time.strftime("%Y-%m-%d %H:%M"),
        }  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(paths: list[str]) -> None:
    print("| executor | workers × threads | wall s | start s | prepare s | units s | close s | compute s "
          "(sum over units) | overhead / unit s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            overhead = f"{r['overhead_per_unit_s']:.2f}"
            print(
                f"| {r['executor']} | {r['workers']} × {r['threads']} | {r['wall']:.1f} | {r['start']:.1f} | "
                f"{r['prepare']:.1f} | {r['units']:.1f} | {r['close']:.1f} | {r['compute']:.1f} | {overhead} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=["inprocess", "ray"], default="inprocess")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=10, help="test pairs per concept")
    parser.add_argument("--train-pairs", type=int, default=25, help="training pairs per concept")
    parser.add_argument("--out", help="JSON file the record is appended to")
    parser.add_argument("--report", nargs="+", help="print the Markdown table of these JSON files")
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    if args.executor == "ray" and args.workers is None:
        args.workers = 1
    record = measure(args)
    print(json.dumps(record))
    if args.out:
        out = Path(args.out)
        records = json.loads(out.read_text()) if out.is_file() else []
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([*records, record], indent=2) + "\n")


if __name__ == "__main__":
    main()
