"""Exact least squares at scale: fused Ridge against numpy's ``X.T @ X`` on the same cores.

Issue 5, target 2: on 5,000,000 x 100 rows (float64, 4 GB) the fused
``Ridge`` (exact fusion of sufficient statistics) should reach at least half the
throughput (rows per second) of plain numpy ``X.T @ X`` computed on the same
persisted blocks by the same workers, and its coefficients should equal
scikit-learn's.

Cases
-----
``daskfuse-ridge``
    ``FusedRegressor(Ridge(alpha=1.0), fusion="exact")`` on the persisted dask arrays.
``numpy-gram-cluster``
    The throughput ceiling: one task per persisted block computing ``block.T @ block``
    on the worker that holds it, summed; the same 2 workers x 1 thread (and 1 BLAS
    thread each, as dask's nanny sets) as the fused fit.
``numpy-gram-driver``
    ``X.T @ X`` on the gathered NumPy array in the driver, with the driver's BLAS
    threads (the same cores, one process). For reference.
``sklearn-ridge``
    ``Ridge(alpha=1.0)`` fitted in the driver on the gathered NumPy arrays: the
    reference for the coefficients, and its throughput.

The cluster cases run first; then ``X`` is gathered into the driver block by block
(into one preallocated array, so the driver never holds two copies) and released from
the cluster, and the driver cases run (scikit-learn's ``Ridge`` copies ``X`` to centre
it: about twice the data in the driver at its peak).

Throughput is ``rows / median seconds``; "% of X.T@X" is the fused Ridge's throughput
over ``numpy-gram-cluster``'s. The coefficient check is the maximum relative
difference to scikit-learn's ``coef_`` (target: <= 1e-6, i.e. equal up to rounding)
and the absolute intercept difference. Also reported: held-out R², peak memory.

Usage
-----
::

    python benchmarks/bench_exact.py            # 5,000,000 x 100 in 8 partitions, 3 repeats
    python benchmarks/bench_exact.py --quick    # 200,000 x 100, 1 repeat
    python benchmarks/bench_exact.py --rows 2000000 --chunks 250000

Results go to ``benchmarks/results/exact.json`` and ``exact.md`` (``--quick``:
``exact_quick.*``); ``benchmarks/run.py`` collects the ``"targets"``.
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
import dask
import dask.array as da
import numpy as np

DEFAULTS = {"rows": 5_000_000, "chunks": 625_000, "repeats": 3, "test_rows": 100_000}
QUICK_DEFAULTS = {"rows": 200_000, "chunks": 25_000, "repeats": 1, "test_rows": 20_000}
ALPHA = 1.0
#: issue 5, target 2
THROUGHPUT_SHARE = 0.5
COEF_RTOL = 1e-6
WARM_MODULES = ("sklearn.linear_model", "daskfuse", "daskfuse.fusion.exact")


# --------------------------------------------------------------------------- data


def make_params(n_features: int, seed: int) -> dict[str, Any]:
    """Correlated features with non-zero means (condition number <= 16), |coef| in [0.5, 2]."""
    rng = np.random.default_rng([seed, 202, n_features])
    q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    scales = 1.0 + 3.0 * 0.8 ** np.arange(n_features)
    return {
        "mix": scales[:, None] * q,
        "mu": rng.uniform(-3, 3, n_features),
        "coef": rng.uniform(0.5, 2.0, n_features) * rng.choice([-1.0, 1.0], n_features),
        "intercept": 1.5,
    }


def _block(n: int, block: int, *, params: dict[str, Any], seed: int, stream: int):
    """Row block ``block``: a C-contiguous ``X`` (n x features) and its ``y``."""
    rng = np.random.default_rng([seed, stream, block])
    x = rng.standard_normal((n, len(params["mu"]))) @ params["mix"]
    x += params["mu"]
    y = x @ params["coef"] + params["intercept"] + rng.standard_normal(n)
    return x, y


def make_data(rows: int, chunk: int, params: dict[str, Any], seed: int, stream: int):
    """Lazy ``X`` and ``y`` in row chunks of ``chunk``, generated in the cluster."""
    n_features = len(params["mu"])
    sizes = [chunk] * (rows // chunk) + ([rows % chunk] if rows % chunk else [])
    fn = functools.partial(_block, params=params, seed=seed, stream=stream)
    xs, ys = [], []
    for i, n in enumerate(sizes):
        part = dask.delayed(fn, nout=2)(n, i)
        xs.append(da.from_delayed(part[0], shape=(n, n_features), dtype=np.float64))
        ys.append(da.from_delayed(part[1], shape=(n,), dtype=np.float64))
    return da.concatenate(xs), da.concatenate(ys)


def gather_blocks(client: Any, a: da.Array) -> np.ndarray:
    """A persisted dask array into one NumPy array, one block at a time (no second copy)."""
    from distributed import Future

    out = np.empty(a.shape, dtype=a.dtype)
    keys = a.__dask_keys__()
    if a.ndim == 2:  # one column block: [[key], [key], ...]
        keys = [row[0] for row in keys]
    start = 0
    for key in keys:
        block = client.gather(Future(key, client=client))
        out[start : start + len(block)] = block
        start += len(block)
        del block
    assert start == len(out), (start, len(out))
    return out


# ------------------------------------------------------------------- reference work


def _gram(block: np.ndarray) -> np.ndarray:
    # aligned as the fused fit sees it (daskfuse realigns a block distributed moved)
    block = np.require(block, requirements="A")
    return block.T @ block


def _add(*grams: np.ndarray) -> np.ndarray:
    return functools.reduce(np.add, grams)


def cluster_gram(X: da.Array) -> np.ndarray:
    """Sum of ``block.T @ block`` over the persisted blocks, each on its worker."""
    parts = [dask.delayed(_gram, pure=True)(b) for b in X.to_delayed().ravel()]
    return dask.compute(dask.delayed(_add, pure=True)(*parts))[0]


# --------------------------------------------------------------------------- cases


def _record(key: str, label: str, library: str, on: str, rows: int, parts: int) -> dict:
    return {
        "key": key,
        "label": label,
        "library": library,
        "fit_on": on,
        "rows": rows,
        "partitions": parts,
        "status": "ok",
    }


def _timed(rec: dict[str, Any], times: common.FitTimes) -> None:
    rec["fit_seconds"] = times.seconds
    rec["fit_seconds_median"] = times.median
    rec["rows_per_second"] = rec["rows"] / times.median
    rec["memory"] = times.memory


def run(args: argparse.Namespace, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Every case; returns the results, models and data facts."""
    from sklearn.linear_model import Ridge

    from daskfuse import FusedRegressor

    t0 = time.perf_counter()
    # held in a dict so that the cluster copy can be dropped before the driver cases
    data = dict(
        zip("Xy", client.persist(list(make_data(args.rows, args.chunks, params, args.seed, 0))))
    )
    X = data["X"]
    Xt, yt = make_data(args.test_rows, min(args.chunks, args.test_rows), params, args.seed, 1)
    X_test, y_test = dask.compute(Xt, yt)
    common.wait(list(data.values()))
    parts = X.numblocks[0]
    prep = time.perf_counter() - t0
    print(
        f"data: {args.rows:,} x {args.features} float64 ({X.nbytes / 2**30:.2f} GiB) in "
        f"{parts} partitions, persisted in {prep:.1f} s",
        flush=True,
    )
    baseline = common.settle(client)
    machine = common.machine_info(client)
    results: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    n, d = args.rows, args.features
    flops = 2.0 * n * d * d  # a general matrix product; BLAS may do half (syrk)

    def attempt(rec: dict[str, Any], fn) -> Any:
        print(f"-> {rec['key']} x{args.repeats} ...", end=" ", flush=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = fn()
            print(f"{rec['fit_seconds_median']:.2f} s", flush=True)
            return out
        except Exception as exc:  # a failing case must not stop the run
            rec.update(common.error_fields(exc))
            print(f"ERROR {rec['error'][:200]}", flush=True)
            return None
        finally:
            results.append(rec)

    # 1. cluster: the fused Ridge, then the Gram matrix on the same blocks and workers
    rec = _record(
        "daskfuse-ridge",
        f"FusedRegressor(Ridge(alpha={ALPHA:g})), exact",
        "daskfuse",
        "dask",
        n,
        parts,
    )

    def fused():
        model, times = common.time_fits(
            FusedRegressor(Ridge(alpha=ALPHA), fusion="exact"),
            (data["X"], data["y"]),
            args.repeats,
            client,
            baseline,
        )
        _timed(rec, times)
        rec["partitions"] = int(model.n_partitions_)
        rec.update(common.daskfuse_breakdown(model, times.median, common.slots(client)))
        return model

    models["daskfuse-ridge"] = attempt(rec, fused)

    rec = _record(
        "numpy-gram-cluster",
        "numpy block.T @ block per persisted block, summed (same workers)",
        "numpy",
        "dask",
        n,
        parts,
    )

    def gram_cluster():
        out, times = common.time_call(
            lambda: cluster_gram(data["X"]), args.repeats, client, baseline
        )
        _timed(rec, times)
        rec["gflops"] = flops / times.median / 1e9
        return out

    gram = attempt(rec, gram_cluster)

    # 2. gather X into the driver, release it from the cluster, then the driver cases
    t0 = time.perf_counter()
    data = {k: gather_blocks(client, v) for k, v in data.items()}
    del X
    common.settle(client)
    print(f"gathered X and y into the driver in {time.perf_counter() - t0:.1f} s", flush=True)

    rec = _record(
        "numpy-gram-driver",
        "numpy X.T @ X in the driver (driver's BLAS threads)",
        "numpy",
        "numpy",
        n,
        1,
    )

    def gram_driver():
        out, times = common.time_call(lambda: data["X"].T @ data["X"], args.repeats, client)
        _timed(rec, times)
        rec["gflops"] = flops / times.median / 1e9
        return out

    gram_np = attempt(rec, gram_driver)
    rec = _record(
        "sklearn-ridge", f"Ridge(alpha={ALPHA:g}), one process", "scikit-learn", "numpy", n, 1
    )

    def sk():
        model, times = common.time_fits(
            Ridge(alpha=ALPHA), (data["X"], data["y"]), args.repeats, client, None
        )
        _timed(rec, times)
        return model

    models["sklearn-ridge"] = attempt(rec, sk)
    data.clear()

    # untimed: quality and fidelity
    ref = models.get("sklearn-ridge")
    for r in results:
        model = models.get(r["key"])
        if r["status"] != "ok" or model is None:
            continue
        est = getattr(model, "fused_estimator_", model)
        pred = est.predict(X_test)
        r["r2"] = float(1 - np.sum((y_test - pred) ** 2) / np.sum((y_test - y_test.mean()) ** 2))
        if ref is not None and r["key"] != "sklearn-ridge":
            r["coef_max_rel_diff"] = float(
                np.max(np.abs(est.coef_ - ref.coef_) / np.abs(ref.coef_))
            )
            r["intercept_abs_diff"] = float(abs(est.intercept_ - ref.intercept_))
    if gram is not None and gram_np is not None:
        for r in results:
            if r["key"] == "numpy-gram-cluster":
                r["max_rel_diff_vs_driver"] = float(
                    np.max(np.abs(gram - gram_np)) / np.max(np.abs(gram_np))
                )
    return {"results": results, "machine": machine, "baseline": baseline, "partitions": parts}


# ------------------------------------------------------------------------ targets


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 5, target 2: throughput share of X.T @ X; coefficients equal to scikit-learn's."""
    ok = {r["key"]: r for r in results if r["status"] == "ok"}
    fused, gram = ok.get("daskfuse-ridge"), ok.get("numpy-gram-cluster")
    out = []
    if fused and gram:
        share = fused["rows_per_second"] / gram["rows_per_second"]
        out.append(
            common.target(
                "2",
                "2a",
                "fused Ridge throughput as a share of numpy X.T @ X (same blocks, same workers)",
                100 * share,
                ">=",
                100 * THROUGHPUT_SHARE,
                "%",
                digits=0,
                detail=(
                    f"fused {fused['rows_per_second'] / 1e6:.2f} M rows/s "
                    f"({fused['fit_seconds_median']:.2f} s), X.T @ X "
                    f"{gram['rows_per_second'] / 1e6:.2f} M rows/s "
                    f"({gram['fit_seconds_median']:.2f} s) on {fused['rows']:,} rows"
                ),
            )
        )
    else:
        out.append(
            common.target(
                "2",
                "2a",
                "fused Ridge throughput as a share of numpy X.T @ X",
                None,
                ">=",
                100 * THROUGHPUT_SHARE,
                "%",
                detail="daskfuse-ridge or numpy-gram-cluster failed",
            )
        )
    diff = fused.get("coef_max_rel_diff") if fused else None
    out.append(
        common.target(
            "2",
            "2b",
            "fused Ridge coefficients vs scikit-learn Ridge: max relative difference",
            diff,
            "<=",
            COEF_RTOL,
            digits=1,
            detail=""
            if diff is None
            else f"intercept difference {fused.get('intercept_abs_diff', float('nan')):.1e}",
        )
    )
    if diff is not None:
        out[-1]["measured_text"] = f"{diff:.1e}"
    return out


# ------------------------------------------------------------------------- output

#: the columns of the results table
COLUMNS = (
    "case",
    "library",
    "fit on",
    "rows",
    "partitions",
    "s (median)",
    "s (all)",
    "M rows/s",
    "GFLOP/s (2nd²/s)",
    "held-out R²",
    "max rel. coef diff vs sklearn",
    "peak MiB",
    "rise MiB",
    "note",
)


def markdown_report(payload: dict[str, Any]) -> str:
    p = payload["parameters"]
    lines = [
        *common.report_head(
            payload,
            "Exact least squares benchmark",
            data=[
                f"- data: {p['rows']:,} x {p['features']} float64 "
                f"({p['rows'] * p['features'] * 8 / 2**30:.2f} GiB), row chunks of "
                f"{p['chunks']:,} ({p['partitions']} partitions), correlated features; "
                f"held-out {p['test_rows']:,} rows"
            ],
            notes=[
                common.MEMORY_LINE,
                "- the cluster cases run first; then X is gathered into the driver block by "
                "block and released from the cluster, and the driver cases run",
                "- worker BLAS threads: "
                + ", ".join(payload["machine"]["worker_threadpools"] or []),
            ],
        ),
        "",
        *common.md_head(COLUMNS),
    ]
    for r in payload["results"]:
        peak, rise = common.memory_cells(r.get("memory"), r["fit_on"])
        diff = r.get("coef_max_rel_diff")
        lines.append(
            common.md_row(
                [
                    *common.case_cells(r),
                    common.fmt(r["rows_per_second"] / 1e6) if "rows_per_second" in r else "—",
                    common.fmt(r.get("gflops"), 1),
                    common.fmt(r.get("r2"), 6),
                    "—" if diff is None else f"{diff:.1e}",
                    peak,
                    rise,
                    common.md_cell(r.get("error", "") or common.breakdown_note(r), 240),
                ]
            )
        )
    lines += common.targets_section(payload["targets"], 2)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 200,000 rows, 1 repeat")
    parser.add_argument("--rows", type=int, help="training rows (default 5,000,000)")
    parser.add_argument("--features", type=int, default=100, help="features")
    parser.add_argument("--chunks", type=int, help="rows per partition (default 625,000)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3)")
    parser.add_argument("--test-rows", type=int, help="held-out rows (default 100,000)")
    common.add_run_args(parser)
    parser.add_argument("--out", type=Path, help="JSON output (default results/exact.json)")
    args = parser.parse_args(argv)
    common.complete_args(args, "exact", DEFAULTS, QUICK_DEFAULTS)
    counts = (args.rows, args.chunks, args.repeats, args.test_rows, args.features)
    common.check_positive(parser, counts, "sizes and --repeats must be positive")
    args.chunks = min(args.chunks, args.rows)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    params = make_params(args.features, args.seed)
    with common.local_cluster(args.workers, args.threads, WARM_MODULES) as client:
        out = run(args, client, params)
    parameters = {
        "quick": args.quick,
        "rows": args.rows,
        "features": args.features,
        "chunks": args.chunks,
        "partitions": out["partitions"],
        "repeats": args.repeats,
        "test_rows": args.test_rows,
        "workers": args.workers,
        "threads": args.threads,
        "seed": args.seed,
        "alpha": ALPHA,
        "baseline_scheduler_tasks": out["baseline"],
    }
    common.write_run(
        args.out,
        "exact",
        t_start,
        parameters,
        out["machine"],
        out["results"],
        markdown_report,
        targets=targets(out["results"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
