"""The hardware's own ceiling on strong scaling: the same fits in plain processes.

Target 7 asks for 75% parallel efficiency at 16 workers. This script measures what
the machine itself allows, with no dask and no daskfuse: ``p`` plain processes
(``multiprocessing``, one BLAS/OpenMP thread each), started together behind a
barrier, each fitting the partition models of the scaling benchmark's cases on its
own in-memory partition, one after another. If one fit takes ``t1`` alone and
``tp`` while ``p`` processes fit at once, no scheduler can do better than an
efficiency of ``t1 / tp``: the cores slow down when all of them work (shared memory
bandwidth and caches, all-core clock limits), whatever runs the tasks.

Cases (the per-partition work of ``bench_scaling.py``'s defaults)
    ``linear``: ``LogisticRegression()`` on 250,000 x 20 rows.
    ``forest``: ``RandomForestClassifier(n_estimators=8)`` on 40,000 x 20 rows.

Usage
-----
::

    python benchmarks/ceiling.py --workers 1 16     # on the 16-core machine
    python benchmarks/ceiling.py --workers 1 2      # here

Writes ``benchmarks/results/ceiling.json`` and ``ceiling.md`` (or ``--out``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import _common as common
import numpy as np

CASES = {
    "linear": (250_000, "LogisticRegression()"),
    "forest": (40_000, "RandomForestClassifier(8)"),
}


def _data(rows: int, seed: int):
    # the scaling benchmark's rule and features
    from bench_scaling import FEATURES, labelled_rows

    return labelled_rows(np.random.default_rng([seed, 7]), rows, FEATURES)


def _fit(case: str, X, y):
    if case == "linear":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression().fit(X, y)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=8, random_state=0).fit(X, y)


def _worker(case: str, index: int, fits: int, barrier, queue) -> None:
    from threadpoolctl import threadpool_limits

    X, y = _data(CASES[case][0], index)
    with threadpool_limits(1):
        _fit(case, X, y)  # warm: imports, first-touch of memory
        barrier.wait()
        times = []
        for _ in range(fits):
            t0 = time.perf_counter()
            _fit(case, X, y)
            times.append(time.perf_counter() - t0)
    queue.put(times)


def measure(case: str, p: int, fits: int) -> list[float]:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(p), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(case, i, fits, barrier, queue)) for i in range(p)]
    for proc in procs:
        proc.start()
    times = [t for _ in procs for t in queue.get()]
    for proc in procs:
        proc.join()
    return times


def main(argv=None) -> int:
    parser = common.make_parser(__doc__, show_defaults=False)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--fits", type=int, default=4, help="fits per process")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--out", type=Path, default=common.result_path("ceiling"))
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases:
        base = None
        for p in sorted(set(args.workers)):
            times = measure(case, p, args.fits)
            med = statistics.median(times)
            base = med if p == 1 else base
            rows.append(
                {
                    "case": case,
                    "workers": p,
                    "fit_seconds_median": med,
                    "fit_seconds": times,
                    "ceiling": None if base is None else base / med,
                }
            )
            print(f"{case} p={p}: median fit {med:.3f} s", flush=True)
    payload = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "rows": rows,
    }
    lines = [
        "# Hardware ceiling of strong scaling (plain processes, no dask)",
        "",
        f"- run: {payload['timestamp']} on {payload['cpus']} CPUs; each process fits its own "
        f"partition {args.fits} times with one thread, all processes at once",
        "- ceiling = median fit seconds alone / median fit seconds with p processes: the "
        "best parallel efficiency any scheduler can reach on these fits",
        "",
        *common.md_head(["case", "partition", "processes", "median fit s", "ceiling"]),
    ]
    for r in rows:
        n, what = CASES[r["case"]]
        ceiling = "—" if r["ceiling"] is None else f"{100 * r['ceiling']:.0f}%"
        lines.append(
            f"| {r['case']} | {what} on {n:,} x 20 | {r['workers']} | "
            f"{r['fit_seconds_median']:.3f} | {ceiling} |"
        )
    common.write_outputs(args.out, payload, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
