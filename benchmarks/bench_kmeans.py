"""k-means at scale: daskfuse's centroid reclustering against scikit-learn and dask-ml.

Issue 5, target 3: on 1,000,000 x 20 rows with k = 16, the fused k-means should be
at least 10x faster than ``dask_ml.cluster.KMeans`` and faster than single-process
scikit-learn ``KMeans(n_init=1)``, with an inertia within 1% of scikit-learn's.

Cases
-----
``daskfuse-kmeans``
    ``FusedClusterer(KMeans(n_clusters=16, random_state=0), fusion="recluster",
    random_state=0)`` on the persisted dask array (8 partitions).
``sklearn-kmeans``
    ``KMeans(n_clusters=16, n_init=1, random_state=0)`` in the driver on the gathered
    NumPy array (its OpenMP threads on the same cores).
``daskml-kmeans``
    ``dask_ml.cluster.KMeans(n_clusters=16, random_state=0)`` (default
    ``init="k-means||"``) on the persisted dask array.

The data are 16 unit-variance Gaussian blobs with centres drawn in [-10, 10]^20 (as
``make_blobs``). Inertia is recomputed the same way for every case, untimed, from its
``cluster_centers_`` on all training rows (daskfuse's own ``inertia_`` is an upper
bound); the adjusted Rand index against the true blobs is reported too. Only ``fit``
is timed (median of ``--repeats``; dask-ml at most ``--slow-repeats`` fits), with
the peak memory of the fitting process.

Usage
-----
::

    python benchmarks/bench_kmeans.py            # 1,000,000 x 20, k=16, 3 repeats
    python benchmarks/bench_kmeans.py --quick    # 100,000 rows, 1 repeat

Results go to ``benchmarks/results/kmeans.json`` and ``kmeans.md`` (``--quick``:
``kmeans_quick.*``); ``benchmarks/run.py`` collects the ``"targets"``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import _common as common
import numpy as np

DEFAULTS = {"rows": 1_000_000, "chunks": 125_000, "repeats": 3}
QUICK_DEFAULTS = {"rows": 100_000, "chunks": 12_500, "repeats": 1}
#: issue 5, target 3
SPEEDUP_VS_DASKML = 10.0
SPEEDUP_VS_SKLEARN = 1.0
INERTIA_TOLERANCE = 0.01
WARM_MODULES = ("sklearn.cluster", "dask_ml.cluster", "daskfuse", "daskfuse.fusion.cluster")


def _block(n: int, block: int, *, centers: np.ndarray, seed: int) -> np.ndarray:
    """Row block ``block``: ``n`` rows drawn from the blobs, then the true blob label."""
    rng = np.random.default_rng([seed, 303, block])
    label = rng.integers(0, len(centers), n)
    x = centers[label] + rng.standard_normal((n, centers.shape[1]))
    return np.column_stack([x, label.astype(np.float64)])


def build_cases(k: int, quick: bool = False) -> list[dict[str, Any]]:
    """(key, label, library, fit on, factory) of every case; imports are lazy.

    With ``quick`` (a smoke run, not a measurement) dask-ml's k-means|| initialisation
    is cut to one round and Lloyd to 10 iterations: its default takes minutes even on
    a small data set on a loaded machine.
    """
    dml_quick = {"init_max_iter": 1, "max_iter": 10} if quick else {}

    def fused():
        from sklearn.cluster import KMeans

        from daskfuse import FusedClusterer

        return FusedClusterer(
            KMeans(n_clusters=k, random_state=0), fusion="recluster", random_state=0
        )

    def sk():
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=1, random_state=0)

    def dml():
        from dask_ml.cluster import KMeans

        return KMeans(n_clusters=k, random_state=0, **dml_quick)

    quick_note = " (quick: init_max_iter=1, max_iter=10)" if quick else ""
    return [
        {
            "key": "daskfuse-kmeans",
            "label": f"FusedClusterer(KMeans({k})), recluster",
            "library": "daskfuse",
            "on": "dask",
            "make": fused,
        },
        {
            "key": "sklearn-kmeans",
            "label": f"KMeans({k}, n_init=1), one process",
            "library": "scikit-learn",
            "on": "numpy",
            "make": sk,
        },
        {
            "key": "daskml-kmeans",
            "label": f"dask_ml KMeans({k}) (default init='k-means||'){quick_note}",
            "library": "dask-ml",
            "on": "dask",
            "make": dml,
            "slow": True,
        },
    ]


def evaluate(model: Any, X: np.ndarray, labels_true: np.ndarray) -> dict[str, Any]:
    """Inertia of the model's centres on all rows and the ARI against the true blobs."""
    from sklearn.metrics import adjusted_rand_score, pairwise_distances_argmin_min

    centers = np.asarray(getattr(model, "fused_estimator_", model).cluster_centers_)
    labels, dist = pairwise_distances_argmin_min(X, centers)
    out = {
        "inertia": float(np.sum(dist**2)),
        "ari_vs_true_blobs": float(adjusted_rand_score(labels_true, labels)),
        "n_centers": int(len(centers)),
    }
    n_iter = getattr(model, "n_iter_", None)
    if n_iter is not None:
        out["n_iter"] = int(np.max(n_iter))
    return out


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 5, target 3."""
    ok = {r["key"]: r for r in results if r["status"] == "ok"}
    fused, sk, dml = (ok.get(k) for k in ("daskfuse-kmeans", "sklearn-kmeans", "daskml-kmeans"))

    def speed(tid: str, anchor: dict | None, goal: float, op: str, what: str):
        if fused is None or anchor is None:
            return common.target("3", tid, what, None, op, goal, "x", detail="case failed")
        ratio = anchor["fit_seconds_median"] / fused["fit_seconds_median"]
        return common.target(
            "3",
            tid,
            what,
            ratio,
            op,
            goal,
            "x",
            detail=f"{anchor['label']} {anchor['fit_seconds_median']:.2f} s vs daskfuse "
            f"{fused['fit_seconds_median']:.2f} s on {fused['rows']:,} rows",
        )

    out = [
        speed("3a", dml, SPEEDUP_VS_DASKML, ">=", "daskfuse KMeans vs dask_ml.cluster.KMeans"),
        speed(
            "3b", sk, SPEEDUP_VS_SKLEARN, ">", "daskfuse KMeans vs scikit-learn KMeans(n_init=1)"
        ),
    ]
    ratio = None
    if fused and sk and "inertia" in fused and "inertia" in sk:
        ratio = fused["inertia"] / sk["inertia"]
    out.append(
        common.target(
            "3",
            "3c",
            "daskfuse inertia / scikit-learn's (same rows)",
            ratio,
            "<=",
            1 + INERTIA_TOLERANCE,
            digits=4,
            detail=""
            if ratio is None
            else f"inertia {fused['inertia']:,.0f} vs {sk['inertia']:,.0f}; ARI vs true blobs "
            f"{fused['ari_vs_true_blobs']:.4f} vs {sk['ari_vs_true_blobs']:.4f}",
        )
    )
    return out


def markdown_report(payload: dict[str, Any]) -> str:
    p = payload["parameters"]
    slow = f" (dask-ml: {min(p['repeats'], p['slow_repeats'])})"
    lines = [
        *common.report_head(
            payload,
            "k-means benchmark",
            data=[
                f"- data: {p['rows']:,} x {p['features']} float64, {p['k']} unit-variance blobs "
                f"with centres in [-10, 10]^{p['features']}, row chunks of {p['chunks']:,} "
                f"({p['partitions']} partitions); k = {p['k']}"
            ],
            cluster_suffix=slow,
            notes=[
                common.MEMORY_LINE,
                "- inertia: recomputed for every case from its cluster_centers_ on all "
                "training rows (untimed)",
            ],
        ),
        "",
        *common.md_head(
            [
                *common.CASE_COLUMNS,
                "inertia",
                "inertia / sklearn",
                "ARI vs true blobs",
                "peak MiB",
                "rise MiB",
                "anchor s / daskfuse s",
                "note",
            ]
        ),
    ]
    for r in payload["results"]:
        peak, rise = common.memory_cells(r.get("memory"), r["fit_on"])
        lines.append(
            common.md_row(
                [
                    *common.case_cells(r),
                    "—" if "inertia" not in r else f"{r['inertia']:,.0f}",
                    common.fmt(r.get("inertia_ratio"), 4),
                    common.fmt(r.get("ari_vs_true_blobs"), 4),
                    peak,
                    rise,
                    common.fmt(r.get("ratio_vs_daskfuse")),
                    common.md_cell(r.get("error", "") or common.breakdown_note(r), 240),
                ]
            )
        )
    lines += common.targets_section(payload["targets"], 3)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100,000 rows, 1 repeat")
    parser.add_argument("--rows", type=int, help="training rows (default 1,000,000)")
    parser.add_argument("--features", type=int, default=20, help="features")
    parser.add_argument("--k", type=int, default=16, help="clusters (and true blobs)")
    parser.add_argument("--chunks", type=int, help="rows per partition (default 125,000)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3)")
    parser.add_argument(
        "--slow-repeats", type=int, default=3, help="at most this many fits for dask-ml's KMeans"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="KEY", help="case keys (daskfuse-kmeans sklearn-kmeans ...)"
    )
    common.add_run_args(parser)
    parser.add_argument("--out", type=Path, help="JSON output (default results/kmeans.json)")
    args = parser.parse_args(argv)
    common.complete_args(args, "kmeans", DEFAULTS, QUICK_DEFAULTS)
    counts = (args.rows, args.chunks, args.repeats, args.slow_repeats, args.k)
    common.check_positive(parser, counts, "sizes and repeats must be positive")
    args.chunks = min(args.chunks, args.rows)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    rng = np.random.default_rng([args.seed, 303])
    centers = rng.uniform(-10, 10, (args.k, args.features))
    cases = [c for c in build_cases(args.k, args.quick) if not args.only or c["key"] in args.only]
    results = []
    with common.local_cluster(args.workers, args.threads, WARM_MODULES) as client:
        t0 = time.perf_counter()
        block = functools.partial(_block, centers=centers, seed=args.seed)
        X, y, X_np, y_np = common.persist_and_gather(
            client, *common.make_dask_data(block, args.rows, args.features, args.chunks)
        )
        print(
            f"data: {args.rows:,} x {args.features} in {X.numblocks[0]} partitions, k={args.k} "
            f"(prepared in {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
        baseline = common.settle(client)
        machine = common.machine_info(client)
        for case in cases:
            n = min(args.repeats, args.slow_repeats) if case.get("slow") else args.repeats
            rec = {
                "key": case["key"],
                "label": case["label"],
                "library": case["library"],
                "fit_on": case["on"],
                "rows": args.rows,
                "partitions": X.numblocks[0] if case["on"] == "dask" else 1,
                "status": "ok",
            }
            print(f"-> {case['key']} x{n} ...", end=" ", flush=True)
            times = common.FitTimes()
            try:
                model, _ = common.time_fits(
                    case["make"](),
                    (X if case["on"] == "dask" else X_np,),
                    n,
                    client,
                    baseline,
                    times=times,
                )
                rec.update(
                    fit_seconds=times.seconds,
                    fit_seconds_median=times.median,
                    memory=times.memory,
                )
                if case["library"] == "daskfuse":
                    rec.update(common.daskfuse_breakdown(model, times.median, common.slots(client)))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec.update(evaluate(model, X_np, y_np))
                print(f"{times.median:.2f} s, inertia {rec['inertia']:,.0f}", flush=True)
            except Exception as exc:  # a failing case must not stop the run
                rec.update(common.error_fields(exc))
                rec["fit_seconds"] = times.seconds
                print(f"ERROR {rec['error'][:200]}", flush=True)
            results.append(rec)
    ok = {r["key"]: r for r in results if r["status"] == "ok"}
    fused, sk = ok.get("daskfuse-kmeans"), ok.get("sklearn-kmeans")
    for r in ok.values():
        if sk:
            r["inertia_ratio"] = r["inertia"] / sk["inertia"]
        if fused and r is not fused:
            r["ratio_vs_daskfuse"] = r["fit_seconds_median"] / fused["fit_seconds_median"]
    parameters = {
        "quick": args.quick,
        "rows": args.rows,
        "features": args.features,
        "k": args.k,
        "chunks": args.chunks,
        "partitions": X.numblocks[0],
        "repeats": args.repeats,
        "slow_repeats": args.slow_repeats,
        "workers": args.workers,
        "threads": args.threads,
        "seed": args.seed,
        "baseline_scheduler_tasks": baseline,
    }
    common.write_run(
        args.out,
        "kmeans",
        t_start,
        parameters,
        machine,
        results,
        markdown_report,
        targets=targets(results),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
