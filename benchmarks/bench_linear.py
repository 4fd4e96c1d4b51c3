"""Linear-model benchmark: daskfuse against single-process scikit-learn and dask-ml.

Fits a binary linear classifier on generated data (a few million rows by
default) with every method side by side in one process, on one shared
``distributed.LocalCluster``, and reports the median fit time, the held-out
accuracy and the speed ratio of every anchor against every daskfuse case.

Cases
-----
daskfuse
    ``FusedClassifier(SGDClassifier(random_state=0), fusion="weighted")`` and
    ``FusedClassifier(LogisticRegression(), fusion="weighted")``, one partial
    model per row chunk of ``X``.
scikit-learn (anchor)
    ``SGDClassifier(random_state=0)`` and ``LogisticRegression()`` fitted in
    this (the driver) process on the same data as NumPy arrays.
dask-ml (anchor)
    ``dask_ml.linear_model.LogisticRegression`` with ``solver="newton"`` and
    ``solver="lbfgs"`` (the default ``"admm"`` solver only with ``--with-admm``,
    on its own smaller data set), ``dask_ml.wrappers.Incremental(SGDClassifier)``
    and ``dask_ml.ensemble.BlockwiseVotingClassifier(SGDClassifier)``.

What is timed
-------------
Only the ``fit`` call. The training data are generated inside the cluster and
persisted there (and gathered once into NumPy for the single-process anchors)
before any timing starts, so no case pays for data generation or transfer of
the raw data into the cluster. Each case is fitted ``--repeats`` times on a
fresh clone of its estimator and the median wall-clock time is reported.
Before each fit the script waits (untimed) until the scheduler has released
every task of the previous fit, so no repeat can reuse a cached result.
Accuracy is measured afterwards, outside the timed region, on a held-out test
set drawn from the same distribution. The ratio columns are
``anchor_seconds / daskfuse_seconds``: above 1 means daskfuse fitted faster.

A case that raises is recorded with its error string; the run goes on.

Usage
-----
::

    python benchmarks/bench_linear.py                      # 2,000,000 x 20, 3 repeats
    python benchmarks/bench_linear.py --quick              # 200,000 rows, 1 repeat
    python benchmarks/bench_linear.py --rows 4000000 --chunks 500000
    python benchmarks/bench_linear.py --with-admm --admm-rows 20000

Results go to ``benchmarks/results/linear.json`` and ``linear.md`` (``--quick``
defaults to ``linear_quick.json`` / ``linear_quick.md`` so a smoke run does not
overwrite a full run); the markdown table is also printed.

dask-ml notes (dask-ml 2025.1.0, scikit-learn 1.9)
--------------------------------------------------
* ``BlockwiseVotingClassifier.fit`` returns ``None`` (it fits in place but has
  no ``return self``); the script always keeps its own reference to the
  estimator object and records ``fit_returned_none`` per case.
* ``dask_ml.linear_model.LogisticRegression.score`` returns a lazy 0-d dask
  array (it uses ``dask_glm.utils.accuracy_score``); scores are computed
  explicitly here.
* ``Incremental`` builds the same graph keys on every ``fit``; a repeat fitted
  right after the previous one can pick up its not yet released result (seen:
  1.77 s, then 0.01 s twice). Hence the untimed barrier before every fit.
* Accuracy is computed the same way for every case, from ``predict`` on the
  test set (dask predictions are computed), so these quirks do not matter for
  the reported numbers; the estimator's own ``score`` is recorded next to it
  as a cross-check.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"

DEFAULTS = {
    "rows": 2_000_000,
    "chunks": 250_000,
    "repeats": 3,
    "test_rows": 200_000,
}
QUICK_DEFAULTS = {
    "rows": 200_000,
    "chunks": 25_000,
    "repeats": 1,
    "test_rows": 50_000,
}

DASKFUSE_KEYS = ("daskfuse-sgd", "daskfuse-logreg")
DATA_NOTE = (
    "Data are generated and persisted in the cluster before timing (and gathered "
    "once as NumPy for the single-process anchors): only fit() is timed."
)


# --------------------------------------------------------------------------- data


def _make_block(n: int, coef: np.ndarray, intercept: float, seed: int, stream: int, block: int):
    """One row block: ``n`` rows of features plus a last column of 0/1 labels.

    Features are standard normal; labels follow a logistic link on the fixed
    linear rule ``X @ coef + intercept``, so the best possible accuracy is < 1.
    """
    rng = np.random.default_rng([seed, stream, block])
    x = rng.standard_normal((n, coef.shape[0]))
    p = 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))
    y = (rng.random(n) < p).astype(np.float64)
    return np.column_stack([x, y])


def make_data(
    n_rows: int,
    n_features: int,
    chunk_rows: int,
    coef: np.ndarray,
    intercept: float,
    seed: int,
    stream: int,
) -> tuple[da.Array, da.Array]:
    """Lazily generate ``X`` (float64) and ``y`` (int64) with row chunks of ``chunk_rows``."""
    sizes = [chunk_rows] * (n_rows // chunk_rows)
    if n_rows % chunk_rows:
        sizes.append(n_rows % chunk_rows)
    blocks = [
        da.from_delayed(
            dask.delayed(_make_block)(n, coef, intercept, seed, stream, i),
            shape=(n, n_features + 1),
            dtype=np.float64,
        )
        for i, n in enumerate(sizes)
    ]
    z = da.concatenate(blocks, axis=0)
    return z[:, :n_features], z[:, n_features].astype(np.int64)


# -------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One benchmarked method."""

    key: str
    label: str
    library: str
    on: str  # "dask" (fit on the persisted dask arrays) or "numpy" (driver process)
    make: Callable[[], Any]
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "main"
    repeats: int | None = None


def build_cases(args: argparse.Namespace) -> list[Case]:
    """The benchmark cases; estimators are imported lazily so a missing package is one error."""

    def sgd():
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier(random_state=0)

    def sk_logreg():
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression()

    def fused(base: Callable[[], Any]) -> Callable[[], Any]:
        def make():
            from daskfuse import FusedClassifier

            return FusedClassifier(base(), fusion="weighted")

        return make

    def dml_logreg(solver: str) -> Callable[[], Any]:
        def make():
            from dask_ml.linear_model import LogisticRegression

            return LogisticRegression(solver=solver)

        return make

    def incremental():
        from dask_ml.wrappers import Incremental

        return Incremental(sgd(), random_state=0)

    def blockwise():
        from dask_ml.ensemble import BlockwiseVotingClassifier

        return BlockwiseVotingClassifier(sgd(), classes=[0, 1])

    cases = [
        Case(
            "daskfuse-sgd",
            "FusedClassifier(SGDClassifier), weighted",
            "daskfuse",
            "dask",
            fused(sgd),
        ),
        Case(
            "daskfuse-logreg",
            "FusedClassifier(LogisticRegression), weighted",
            "daskfuse",
            "dask",
            fused(sk_logreg),
        ),
        Case("sklearn-sgd", "SGDClassifier, one process", "scikit-learn", "numpy", sgd),
        Case(
            "sklearn-logreg", "LogisticRegression, one process", "scikit-learn", "numpy", sk_logreg
        ),
        Case(
            "daskml-logreg-newton",
            "LogisticRegression(solver='newton')",
            "dask-ml",
            "dask",
            dml_logreg("newton"),
        ),
        Case(
            "daskml-logreg-lbfgs",
            "LogisticRegression(solver='lbfgs')",
            "dask-ml",
            "dask",
            dml_logreg("lbfgs"),
        ),
        Case(
            "daskml-incremental-sgd",
            "Incremental(SGDClassifier)",
            "dask-ml",
            "dask",
            incremental,
            fit_kwargs={"classes": [0, 1]},
        ),
        Case(
            "daskml-blockwise-sgd",
            "BlockwiseVotingClassifier(SGDClassifier)",
            "dask-ml",
            "dask",
            blockwise,
        ),
    ]
    if args.with_admm:
        # ADMM is slow (618 s measured on 200,000 x 20): its own small data set, with the
        # daskfuse cases re-run on that same data so its ratios compare like with like.
        cases += [
            Case(
                "daskfuse-sgd",
                "FusedClassifier(SGDClassifier), weighted",
                "daskfuse",
                "dask",
                fused(sgd),
                dataset="admm",
                repeats=args.admm_repeats,
            ),
            Case(
                "daskfuse-logreg",
                "FusedClassifier(LogisticRegression), weighted",
                "daskfuse",
                "dask",
                fused(sk_logreg),
                dataset="admm",
                repeats=args.admm_repeats,
            ),
            Case(
                "daskml-logreg-admm",
                "LogisticRegression(solver='admm') (default)",
                "dask-ml",
                "dask",
                dml_logreg("admm"),
                dataset="admm",
                repeats=args.admm_repeats,
            ),
        ]
    if args.only:
        wanted = set(args.only)
        cases = [c for c in cases if c.key in wanted]
    return cases


def _scheduler_task_count(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def settle(client: Any, target: int | None = None, timeout: float = 10.0) -> int:
    """Wait until the scheduler holds no more than ``target`` tasks; return the count.

    Results of a previous fit are released asynchronously. If a repeat submits a
    graph with the same keys before they are gone (dask-ml's ``Incremental``
    builds deterministic keys), it gets the old result back and times ~0 s. With
    ``target=None`` wait until the count stops changing (to take a baseline).
    """
    gc.collect()
    deadline = time.monotonic() + timeout
    last = None
    while True:
        n = client.run_on_scheduler(_scheduler_task_count)
        done = n == last if target is None else n <= target
        if done or time.monotonic() > deadline:
            return n
        last = n
        time.sleep(0.1)


def _as_float(value: Any) -> float:
    """A Python float from a float, NumPy scalar or lazy dask scalar."""
    if dask.is_dask_collection(value):
        value = value.compute()
    return float(np.asarray(value))


def _predict_labels(model: Any, case: Case, data: dict[str, Any]) -> np.ndarray:
    if case.on == "numpy":
        pred = model.predict(data["X_test_np"])
    else:
        pred = model.predict(data["X_test"])
        if dask.is_dask_collection(pred):
            pred = pred.compute()
    return np.asarray(pred).ravel()


def run_case(case: Case, data: dict[str, Any], repeats: int, client: Any) -> dict[str, Any]:
    """Fit ``case`` ``repeats`` times (timed), then score it once (untimed)."""
    from sklearn.base import clone

    ds = data["datasets"][case.dataset]
    result: dict[str, Any] = {
        "key": case.key,
        "label": case.label,
        "library": case.library,
        "fit_on": case.on,
        "dataset": case.dataset,
        "rows": ds["rows"],
        "partitions": ds["partitions"] if case.on == "dask" else 1,
        "status": "ok",
    }
    if case.on == "numpy":
        X, y = ds["X_np"], ds["y_np"]
    else:
        X, y = ds["X"], ds["y"]
    times: list[float] = []
    caught: list[str] = []
    try:
        template = case.make()
        model = None
        returned_none = False
        for _ in range(repeats):
            model = returned = None  # drop the previous fit before the barrier
            left = settle(client, data["baseline_tasks"])
            if left > data["baseline_tasks"]:
                result["tasks_left_before_fit"] = left - data["baseline_tasks"]
            est = clone(template)
            with warnings.catch_warnings(record=True) as wlist:
                warnings.simplefilter("always")
                t0 = time.perf_counter()
                returned = est.fit(X, y, **case.fit_kwargs)
                times.append(time.perf_counter() - t0)
            caught += [f"{w.category.__name__}: {w.message}"[:200] for w in wlist]
            # dask-ml's BlockwiseVotingClassifier.fit returns None; keep our own reference.
            returned_none = returned_none or returned is None
            model = est if returned is None else returned
        result["fit_returned_none"] = returned_none
        result["fit_seconds"] = times
        result["fit_seconds_median"] = statistics.median(times)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = _predict_labels(model, case, data)
            result["accuracy"] = float(np.mean(pred == data["y_test_np"]))
            try:
                if case.on == "numpy":
                    score = model.score(data["X_test_np"], data["y_test_np"])
                else:
                    score = model.score(data["X_test"], data["y_test"])
                result["score_is_lazy"] = bool(dask.is_dask_collection(score))
                result["score_method"] = _as_float(score)
            except Exception as exc:  # cross-check only
                result["score_method_error"] = f"{type(exc).__name__}: {exc}"
        if case.library == "daskfuse":
            report = getattr(model, "partition_report_", None)
            if report is not None:
                result["partition_report_rows"] = len(report)
            if getattr(model, "n_partitions_", None) is not None:
                result["partitions"] = int(model.n_partitions_)
    except Exception as exc:  # a failing case must not stop the run
        result["status"] = "error"
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=8)
        if times:
            result["fit_seconds"] = times
    if caught:
        result["warnings"] = sorted(set(caught))
    return result


def add_ratios(results: list[dict[str, Any]]) -> None:
    """``anchor_seconds / daskfuse_seconds`` for every anchor and daskfuse case on the same data."""
    fused = {
        (r["dataset"], r["key"]): r["fit_seconds_median"]
        for r in results
        if r["library"] == "daskfuse" and r["status"] == "ok"
    }
    for r in results:
        if r["library"] == "daskfuse" or r["status"] != "ok":
            continue
        r["ratios"] = {
            f"vs_{key}": r["fit_seconds_median"] / fused[(r["dataset"], key)]
            for key in DASKFUSE_KEYS
            if fused.get((r["dataset"], key))
        }


# ------------------------------------------------------------------------- output


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # a missing package is reported as None
        return None


def machine_info(client: Any) -> dict[str, Any]:
    """CPU, memory, load, BLAS threads of the driver and package versions."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": {
            name: _version(mod)
            for name, mod in [
                ("daskfuse", "daskfuse"),
                ("dask", "dask"),
                ("distributed", "distributed"),
                ("scikit-learn", "sklearn"),
                ("dask-ml", "dask_ml"),
                ("dask-glm", "dask_glm"),
                ("numpy", "numpy"),
                ("pandas", "pandas"),
            ]
        },
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        info["memory_gib"] = None
    try:
        from threadpoolctl import threadpool_info

        info["driver_threadpools"] = [
            {"api": p.get("internal_api"), "num_threads": p.get("num_threads")}
            for p in threadpool_info()
        ]
    except Exception:
        info["driver_threadpools"] = None
    workers = client.scheduler_info().get("workers", {})
    info["workers"] = len(workers)
    info["threads_per_worker"] = sorted({w.get("nthreads") for w in workers.values()})
    return info


def _fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    head = (
        "| case | library | fit on | rows | partitions | fit s (median) | fit s (all) | accuracy "
        "| anchor s / daskfuse-SGD s | anchor s / daskfuse-LR s | note |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in results:
        ratios = r.get("ratios", {})
        note = r.get("error", "") if r["status"] != "ok" else ""
        if r.get("fit_returned_none"):
            note = "fit() returned None (fitted in place)"
        lines.append(
            "| {label} | {lib} | {on} | {rows:,} | {parts} | {med} | {all} | {acc} | {r1} | {r2} "
            "| {note} |".format(
                label=r["label"],
                lib=r["library"],
                on="driver (NumPy)" if r["fit_on"] == "numpy" else "cluster (dask)",
                rows=r["rows"],
                parts=r["partitions"],
                med=_fmt(r.get("fit_seconds_median")),
                all=", ".join(f"{t:.2f}" for t in r.get("fit_seconds", [])) or "—",
                acc=_fmt(r.get("accuracy"), 4),
                r1=_fmt(ratios.get("vs_daskfuse-sgd")),
                r2=_fmt(ratios.get("vs_daskfuse-logreg")),
                note=note.replace("|", "\\|").replace("\n", " ")[:160],
            )
        )
    return "\n".join(lines)


def _loads(values: list[float] | None) -> str:
    return "—" if values is None else " / ".join(f"{v:.2f}" for v in values)


def markdown_report(payload: dict[str, Any]) -> str:
    """Header with parameters and machine, then the table."""
    p, m = payload["parameters"], payload["machine"]
    v = m["versions"]
    lines = [
        "# Linear benchmark",
        "",
        f"- run: {payload['timestamp']} ({payload['wall_seconds']:.0f} s wall in all)",
        f"- data: {p['rows']:,} x {p['features']} float64, row chunks of {p['chunks']:,} "
        f"({p['partitions']} partitions); held-out test {p['test_rows']:,} rows; "
        f"oracle (true rule) test accuracy {payload['oracle_accuracy']:.4f}",
        f"- cluster: LocalCluster(n_workers={p['workers']}, threads_per_worker={p['threads']}, "
        f"processes=True); median of {p['repeats']} fit(s) per case",
        f"- machine: {m['cpu_count']} CPUs, {m['memory_gib']} GiB, {m['platform']}, "
        f"load average (1/5/15 min) at start {_loads(m.get('loadavg_at_start'))}, "
        f"at end {_loads(m.get('loadavg_at_end'))} (other load on the machine skews timings)",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- {DATA_NOTE}",
        "- ratios are anchor_seconds / daskfuse_seconds on the same data: > 1 means daskfuse "
        "fitted faster.",
    ]
    if p.get("with_admm"):
        lines.append(
            f"- ADMM rows use their own data set: {p['admm_rows']:,} rows in "
            f"{p['admm_partitions']} partitions, median of {p['admm_repeats']} fit(s); the "
            "daskfuse cases are re-run on it for the ratios."
        )
    lines += ["", markdown_table(payload["results"]), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _warm_workers() -> None:
    """Import the libraries in each worker so no case pays for the first import."""
    for mod in (
        "sklearn.linear_model",
        "dask_ml.linear_model",
        "dask_ml.wrappers",
        "dask_ml.ensemble",
        "daskfuse",
    ):
        try:
            importlib.import_module(mod)
        except Exception:  # a missing module fails in its own case
            pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, help=f"training rows (default {DEFAULTS['rows']:,})")
    parser.add_argument("--features", type=int, default=20, help="features")
    parser.add_argument(
        "--chunks", type=int, help=f"rows per chunk/partition (default {DEFAULTS['chunks']:,})"
    )
    parser.add_argument("--repeats", type=int, help="fits per case, median reported (default 3)")
    parser.add_argument("--test-rows", type=int, help="held-out rows (default 200,000)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 200,000 rows in 25,000-row chunks, 1 repeat",
    )
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster n_workers")
    parser.add_argument("--threads", type=int, default=1, help="LocalCluster threads_per_worker")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument(
        "--with-admm",
        action="store_true",
        help="also run dask-ml's default solver='admm' on --admm-rows rows",
    )
    parser.add_argument("--admm-rows", type=int, default=20_000, help="rows for the ADMM case")
    parser.add_argument("--admm-repeats", type=int, default=1, help="fits for the ADMM case")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="KEY",
        help="run only these case keys (e.g. daskfuse-sgd sklearn-sgd)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON output; the .md goes next to it (default "
        "benchmarks/results/linear.json, or linear_quick.json with --quick)",
    )
    args = parser.parse_args(argv)
    base = QUICK_DEFAULTS if args.quick else DEFAULTS
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None:
        args.out = RESULTS_DIR / ("linear_quick.json" if args.quick else "linear.json")
    if args.rows < 1 or args.chunks < 1 or args.repeats < 1 or args.test_rows < 1:
        parser.error("--rows, --chunks, --repeats and --test-rows must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from distributed import Client, LocalCluster, wait

    t_start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    coef = rng.standard_normal(args.features)
    coef *= 2.5 / np.linalg.norm(coef)  # logit scale: noisy labels, oracle accuracy ~0.81
    intercept = 0.25

    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=args.threads,
        processes=True,
        dashboard_address=":0",
    )
    client = Client(cluster)
    try:
        print(f"cluster: {cluster}", flush=True)
        client.run(_warm_workers)
        _warm_workers()

        def dataset(rows: int, chunk_rows: int, stream: int) -> dict[str, Any]:
            X, y = make_data(rows, args.features, chunk_rows, coef, intercept, args.seed, stream)
            X, y = client.persist([X, y])
            wait([X, y])
            return {"X": X, "y": y, "rows": rows, "partitions": X.numblocks[0]}

        t0 = time.perf_counter()
        main_ds = dataset(args.rows, args.chunks, stream=0)
        main_ds["X_np"], main_ds["y_np"] = (
            np.asarray(a) for a in client.gather(client.compute([main_ds["X"], main_ds["y"]]))
        )
        test = dataset(args.test_rows, min(args.chunks, args.test_rows), stream=1)
        X_test_np, y_test_np = (
            np.asarray(a) for a in client.gather(client.compute([test["X"], test["y"]]))
        )
        datasets = {"main": main_ds}
        if args.with_admm:
            admm_chunk = -(-args.admm_rows // main_ds["partitions"])
            admm = dataset(args.admm_rows, admm_chunk, stream=2)
            admm["X_np"], admm["y_np"] = (
                np.asarray(a) for a in client.gather(client.compute([admm["X"], admm["y"]]))
            )
            datasets["admm"] = admm
        oracle = float(np.mean((X_test_np @ coef + intercept > 0) == y_test_np))
        print(
            f"data: {args.rows:,} x {args.features} in {main_ds['partitions']} partitions, "
            f"test {args.test_rows:,} rows, positive rate {main_ds['y_np'].mean():.3f}, "
            f"oracle test accuracy {oracle:.4f} (prepared in {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
        print(DATA_NOTE, flush=True)

        data = {
            "datasets": datasets,
            "X_test": test["X"],
            "y_test": test["y"],
            "X_test_np": X_test_np,
            "y_test_np": y_test_np,
        }
        data["baseline_tasks"] = settle(client)
        machine = machine_info(client)
        results = []
        for case in build_cases(args):
            repeats = case.repeats or args.repeats
            print(f"-> {case.key} [{case.dataset}] x{repeats} ...", end=" ", flush=True)
            r = run_case(case, data, repeats, client)
            results.append(r)
            if r["status"] == "ok":
                print(f"{r['fit_seconds_median']:.2f} s, accuracy {r['accuracy']:.4f}", flush=True)
            else:
                print(f"ERROR {r['error'][:200]}", flush=True)
        add_ratios(results)
    finally:
        client.close()
        cluster.close()

    if hasattr(os, "getloadavg"):
        machine["loadavg_at_end"] = list(os.getloadavg())
    payload = {
        "benchmark": "linear",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t_start,
        "note": DATA_NOTE,
        "ratio_definition": "anchor_seconds / daskfuse_seconds (median fit seconds, same data)",
        "parameters": {
            "rows": args.rows,
            "features": args.features,
            "chunks": args.chunks,
            "partitions": main_ds["partitions"],
            "repeats": args.repeats,
            "test_rows": args.test_rows,
            "workers": args.workers,
            "threads": args.threads,
            "seed": args.seed,
            "quick": args.quick,
            "with_admm": args.with_admm,
            "admm_rows": args.admm_rows if args.with_admm else None,
            "admm_partitions": datasets["admm"]["partitions"] if args.with_admm else None,
            "admm_repeats": args.admm_repeats if args.with_admm else None,
            "true_coef": coef.tolist(),
            "true_intercept": intercept,
            "baseline_scheduler_tasks": data["baseline_tasks"],
        },
        "oracle_accuracy": oracle,
        "machine": machine,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    md_path = args.out.with_suffix(".md")
    report = markdown_report(payload)
    md_path.write_text(report)
    print()
    print(report)
    print(f"wrote {args.out} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
