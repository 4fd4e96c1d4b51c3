"""Global-gradient LogisticRegression (``fusion="newton"``) against its exact peers.

Issue 15's speed targets for the row strategy: a binary ``LogisticRegression`` on
``rows x 50`` generated data (2,000,000 x 50 by default), fitted to the same optimum by

``newton-random``
    ``FusedClassifier(LogisticRegression(C=inf, tol=TOL), fusion="newton")`` on the
    persisted row chunks of i.i.d. rows (so every partition is a random sample);
``newton-sorted``
    the same on the same rows sorted by label (untimed, in the cluster) and cut into
    as many chunks: most partitions hold a single class;
``sklearn``
    ``LogisticRegression(C=inf, tol=TOL)`` (``lbfgs``) in the driver on the gathered
    NumPy copy: the same objective and the same stopping rule (largest gradient entry
    at most ``tol``) as newton;
``daskml-newton`` / ``daskml-lbfgs``
    ``dask_ml.linear_model.LogisticRegression(solver=..., C=inf)`` on the persisted
    chunks. dask-ml's ``newton`` ignores the penalty; ``C=inf`` makes ``lbfgs``'s
    ``lamduh = 1 / C`` zero too, so all five minimise the same unpenalised
    log-loss. dask-ml keeps its own stopping rules (``tol`` on the step for newton,
    on the summed gradient for lbfgs), so it is compared at equal accuracy and by its
    coefficient difference to scikit-learn.

Reported per case: median fit seconds, held-out accuracy, the largest coefficient
difference to a tightly converged scikit-learn fit (``tol=1e-10``, untimed), relative
to its largest coefficient (``coef diff``), the largest entrywise relative difference
(``coef max rel.``), and for newton the passes after the one-shot start
(``len(history_) - 1``) and the Newton steps (``n_iter_``).

Per-pass overhead (``overhead``): newton on tiny data in 64 partitions (64,000 x 50 by
default). For every pass after the first: its seconds from ``history_`` minus the
partition work of a pass spread over the worker threads (the summed ``task_seconds``
of the last pass's ``partition_report_`` divided by the threads). The median over the
passes and repeats is the overhead: scheduling, the combine tree, the root's step and
the new state sent to every partition.

What is timed: only ``fit``, as in the other scripts (``_common.time_fits``): the data
are generated and persisted in the cluster before timing and gathered once as NumPy
for scikit-learn; an untimed wait before every fit until the scheduler has released
the previous fit's tasks. The fits are interleaved (repeat ``r`` fits every case once)
so that the other load on a shared machine weighs on every case alike.

Usage
-----
::

    python benchmarks/bench_newton.py --quick     # 200,000 x 50, 1 repeat
    python benchmarks/bench_newton.py             # 2,000,000 x 50, 3 repeats

Results go to ``benchmarks/results/newton.json`` and ``newton.md`` (``--quick``:
``newton_quick.*``). The targets are in the JSON's ``"targets"`` (``run.py``'s summary).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import _common as common
import dask.array as da
import numpy as np
from bench_linear import _make_block

N_FEATURES = 50
DEFAULTS = {"rows": 2_000_000, "chunks": 250_000, "repeats": 3, "test_rows": 200_000}
QUICK_DEFAULTS = {"rows": 200_000, "chunks": 25_000, "repeats": 1, "test_rows": 20_000}
#: issue 15's goals
TARGET_ROWS = 2_000_000
SPEED_DASKML, SPEED_SKLEARN = 5.0, 1.0
PASSES = {"newton-random": 8, "newton-sorted": 15}
OVERHEAD_SECONDS = 0.05
COEF_TOLERANCE, ACCURACY_TOLERANCE = 1e-4, 0.005
WARM_MODULES = ("sklearn.linear_model", "dask_ml.linear_model", "daskfuse", "scipy.linalg")


@dataclass
class Case:
    key: str
    label: str
    library: str
    on: str  # "dask", "sorted" (label-sorted dask layout) or "numpy"
    make: Any


def build_cases(tol: float) -> list[Case]:
    from dask_ml.linear_model import LogisticRegression as DaskMLLogisticRegression
    from sklearn.linear_model import LogisticRegression

    from daskfuse import FusedClassifier

    def newton():
        return FusedClassifier(LogisticRegression(C=np.inf, tol=tol), fusion="newton")

    def dml(solver):
        return lambda: DaskMLLogisticRegression(solver=solver, C=np.inf)

    lr = f"LogisticRegression(C=inf, tol={tol:g})"
    return [
        Case("newton-random", f"FusedClassifier({lr}), newton", "daskfuse", "dask", newton),
        Case(
            "newton-sorted",
            f"FusedClassifier({lr}), newton, label-sorted",
            "daskfuse",
            "sorted",
            newton,
        ),
        Case(
            "sklearn",
            f"{lr}, one process",
            "scikit-learn",
            "numpy",
            lambda: LogisticRegression(C=np.inf, tol=tol),
        ),
        Case(
            "daskml-newton", "LogisticRegression(solver='newton')", "dask-ml", "dask", dml("newton")
        ),
        Case(
            "daskml-lbfgs",
            "LogisticRegression(solver='lbfgs', C=inf)",
            "dask-ml",
            "dask",
            dml("lbfgs"),
        ),
    ]


# --------------------------------------------------------------------------- data


def _rule(seed: int) -> tuple[np.ndarray, float]:
    """The true linear rule, as ``bench_linear.py`` draws it (oracle accuracy ~0.81)."""
    coef = np.random.default_rng(seed).standard_normal(N_FEATURES)
    return coef * 2.5 / np.linalg.norm(coef), 0.25


def prepare(client: Any, rows: int, chunks: int, seed: int) -> dict[str, Any]:
    """Persist the i.i.d. layout and the label-sorted layout; gather a NumPy copy."""
    coef, intercept = _rule(seed)
    block = functools.partial(_make_block, coef=coef, intercept=intercept, seed=seed, stream=0)
    X, y, X_np, y_np = common.persist_and_gather(
        client, *common.make_dask_data(block, rows, N_FEATURES, chunks)
    )
    # the same rows sorted by label, cut into chunks as long as the random layout's
    Xs = da.concatenate([X[y == 0], X[y == 1]])
    ys = da.concatenate([y[y == 0], y[y == 1]])
    Xs, ys = client.persist([Xs, ys])
    Xs.compute_chunk_sizes()
    ys.compute_chunk_sizes()
    Xs, ys = client.persist([Xs.rechunk((chunks, N_FEATURES)), ys.rechunk(chunks)])
    common.wait([Xs, ys])
    single = {on: _single_class_chunks(labels) for on, labels in (("dask", y), ("sorted", ys))}
    return {
        "X": X,
        "y": y,
        "Xs": Xs,
        "ys": ys,
        "X_np": X_np,
        "y_np": y_np,
        "single_class": single,
    }


def _single_class_chunks(y: da.Array) -> int:
    """How many of ``y``'s chunks hold a single class."""
    n_classes = y.map_blocks(lambda b: np.array([np.unique(b).size]), chunks=(1,), dtype=int)
    return int((n_classes == 1).sum().compute())


def held_out(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    coef, intercept = _rule(seed)
    z = _make_block(rows, 0, coef=coef, intercept=intercept, seed=seed, stream=1)
    return z[:, :N_FEATURES], z[:, N_FEATURES].astype(np.int64)


# -------------------------------------------------------------------------- cases


def _coef_diffs(model: Any, reference: Any) -> dict[str, float]:
    coef = np.ravel(np.asarray(model.coef_))
    ref = np.ravel(reference.coef_)
    return {
        "coef_diff": float(np.max(np.abs(coef - ref)) / np.max(np.abs(ref))),
        "coef_max_rel": float(np.max(np.abs(coef - ref) / np.abs(ref))),
        "intercept_diff": float(
            np.max(np.abs(np.ravel(np.asarray(model.intercept_)) - reference.intercept_))
        ),
    }


def _case_data(case: Case, data: dict[str, Any]) -> tuple[Any, Any]:
    return {
        "dask": (data["X"], data["y"]),
        "sorted": (data["Xs"], data["ys"]),
        "numpy": (data["X_np"], data["y_np"]),
    }[case.on]


def run_cases(cases: list[Case], data, test, args, client, baseline, reference) -> list:
    """Every case's fits, interleaved: round ``r`` fits each case once, so the other
    load on the machine, which moves over minutes, weighs on every case alike."""
    fits: dict[str, dict[str, Any]] = {c.key: {"times": common.FitTimes()} for c in cases}
    for _ in range(args.repeats):
        for case in cases:
            fit = fits[case.key]
            if "error" in fit:
                continue
            try:
                fit["model"], _ = common.time_fits(
                    case.make(),
                    _case_data(case, data),
                    1,
                    client,
                    baseline,
                    memory=False,
                    times=fit["times"],
                )
            except Exception as exc:  # a failing case is recorded; the run goes on
                fit["error"] = exc
    return [_record(case, fits[case.key], data, test, reference) for case in cases]


def _record(case: Case, fit: dict[str, Any], data, test, reference) -> dict[str, Any]:
    X, _ = _case_data(case, data)
    rec: dict[str, Any] = {
        "key": case.key,
        "label": case.label,
        "library": case.library,
        "fit_on": "driver (NumPy)" if case.on == "numpy" else "cluster (dask)",
        "partitions": 1 if case.on == "numpy" else X.numblocks[0],
        "status": "ok",
    }
    if "error" in fit:
        rec.update(common.error_fields(fit["error"]))
        print(f"  {case.key}: ERROR {rec['error']}", flush=True)
        return rec
    model, times = fit["model"], fit["times"]
    rec.update(fit_seconds=times.seconds, fit_seconds_median=times.median)
    if times.warnings:
        rec["warnings"] = sorted(set(times.warnings))
    rec["accuracy"] = float(np.mean(np.asarray(model.predict(test[0])) == test[1]))
    fused = getattr(model, "fused_estimator_", model)
    rec.update(_coef_diffs(fused, reference))
    if hasattr(model, "history_"):
        rec["passes_after_start"] = len(model.history_) - 1
        rec["newton_steps"] = int(np.ravel(fused.n_iter_)[0])
        # where the last fit's time went: each pass's seconds (pass 0 the one-shot start)
        rec["pass_seconds"] = [float(t) for t in model.history_["seconds"]]
        rec["single_class_partitions"] = data["single_class"][case.on]
    print(
        f"  {case.key:14s} fit {times.median:7.2f} s  accuracy {rec['accuracy']:.4f}  "
        f"coef diff {rec['coef_diff']:.1e}"
        + (f"  passes {rec['passes_after_start']}" if "passes_after_start" in rec else ""),
        flush=True,
    )
    return rec


def overhead(client: Any, args: argparse.Namespace, baseline: int) -> dict[str, Any]:
    """Per-pass seconds beyond the partition work, newton in ``--overhead-partitions``."""
    from sklearn.linear_model import LogisticRegression

    from daskfuse import FusedClassifier

    coef, intercept = _rule(args.seed)
    block = functools.partial(_make_block, coef=coef, intercept=intercept, seed=args.seed, stream=2)
    rows = args.overhead_partitions * args.overhead_rows
    X, y = client.persist(list(common.make_dask_data(block, rows, N_FEATURES, args.overhead_rows)))
    common.wait([X, y])
    n_slots = common.slots(client)
    template = FusedClassifier(LogisticRegression(C=np.inf, tol=args.tol), fusion="newton")
    per_pass, work, walls = [], [], []
    for _ in range(args.repeats):
        model, times = common.time_fits(template, (X, y), 1, client, baseline, memory=False)
        later = [float(s) for s in model.history_["seconds"].iloc[1:]]
        share = float(model.partition_report_["task_seconds"].sum()) / n_slots
        per_pass += later
        work += [share] * len(later)
        walls.append(times.median)
    extra = [p - w for p, w in zip(per_pass, work)]
    client.cancel([X, y])
    return {
        "rows": rows,
        "partitions": args.overhead_partitions,
        "fit_seconds": walls,
        "passes": len(per_pass) // args.repeats,
        "pass_seconds_median": statistics.median(per_pass),
        "partition_work_per_pass_seconds": statistics.median(work),
        "overhead_per_pass_seconds": statistics.median(extra),
        "overhead_per_pass_all": extra,
        "slots": n_slots,
    }


# ------------------------------------------------------------------------ targets


def _by_key(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in results if r["status"] == "ok"}


def _close(r: dict[str, Any], anchor: dict[str, Any]) -> list[tuple[str, bool | None]]:
    return [
        (
            f"accuracy within {ACCURACY_TOLERANCE}",
            abs(r["accuracy"] - anchor["accuracy"]) <= ACCURACY_TOLERANCE,
        ),
        (f"newton coef diff <= {COEF_TOLERANCE:g}", r["coef_diff"] <= COEF_TOLERANCE),
    ]


def _speed_target(tid, what, anchor, newton, goal, size, rows) -> dict[str, Any]:
    """``anchor`` s / ``newton`` s >= ``goal``, at equal accuracy and close coefficients."""
    return common.target(
        "15",
        tid,
        what,
        anchor["fit_seconds_median"] / newton["fit_seconds_median"],
        ">=",
        goal,
        "x",
        conditions=[size, *_close(newton, anchor)],
        detail=f"{anchor['label']} {anchor['fit_seconds_median']:.2f} s vs newton "
        f"{newton['fit_seconds_median']:.2f} s on {rows:,} rows; accuracy "
        f"{anchor['accuracy']:.4f} vs {newton['accuracy']:.4f}",
    )


def targets(results: list[dict[str, Any]], rows: int, over: dict[str, Any] | None) -> list:
    ok = _by_key(results)
    newton = ok.get("newton-random")
    size = (f"at >= {TARGET_ROWS:,} rows", True if rows >= TARGET_ROWS else None)
    out = []
    peers = [ok[k] for k in ("daskml-newton", "daskml-lbfgs") if k in ok]
    if newton and peers:
        fastest = min(peers, key=lambda r: r["fit_seconds_median"])
        what = "newton LogisticRegression vs dask-ml's fastest exact peer (newton, lbfgs)"
        out.append(_speed_target("15a", what, fastest, newton, SPEED_DASKML, size, rows))
    if newton and "sklearn" in ok:
        what = "newton LogisticRegression vs single-process scikit-learn (same tol)"
        out.append(_speed_target("15b", what, ok["sklearn"], newton, SPEED_SKLEARN, size, rows))
    for tid, key in (("15c", "newton-random"), ("15d", "newton-sorted")):
        if key in ok:
            r = ok[key]
            out.append(
                common.target(
                    "15",
                    tid,
                    f"newton passes after the one-shot start, {key.split('-')[1]} partitions",
                    r["passes_after_start"],
                    "<=",
                    PASSES[key],
                    digits=0,
                    detail=f"{r['partitions']} partitions, {r['single_class_partitions']} "
                    f"single-class; {r['newton_steps']} Newton steps",
                )
            )
    if over:
        out.append(
            common.target(
                "15",
                "15e",
                f"newton per-pass overhead beyond the partition work, "
                f"{over['partitions']} partitions",
                1000 * over["overhead_per_pass_seconds"],
                "<=",
                1000 * OVERHEAD_SECONDS,
                " ms",
                digits=0,
                detail=f"pass {over['pass_seconds_median'] * 1000:.0f} ms, partition work "
                f"{over['partition_work_per_pass_seconds'] * 1000:.0f} ms per pass "
                f"(task seconds / {over['slots']} slots)",
            )
        )
    return out


# ------------------------------------------------------------------------- report

COLUMNS = (
    "case",
    "library",
    "fit on",
    "partitions",
    "fit s (median)",
    "fit s (all)",
    "accuracy",
    "coef diff",
    "coef max rel.",
    "passes after start",
    "case s / newton s",
)


def _row(r: dict[str, Any], newton_s: float | None) -> str:
    if r["status"] != "ok":
        cells = [r["label"], r["library"], r["fit_on"], str(r["partitions"])]
        return common.md_row(cells + [common.md_cell(r["error"], 120)] + ["—"] * 6)
    ratio = r["fit_seconds_median"] / newton_s if newton_s else None
    passes = r.get("passes_after_start")
    return common.md_row(
        [
            r["label"],
            r["library"],
            r["fit_on"],
            str(r["partitions"]),
            f"{r['fit_seconds_median']:.2f}",
            common.fmt_times(r["fit_seconds"]),
            f"{r['accuracy']:.4f}",
            f"{r['coef_diff']:.1e}",
            f"{r['coef_max_rel']:.1e}",
            "—" if passes is None else f"{passes} ({r['newton_steps']} steps)",
            common.fmt(ratio),
        ]
    )


def markdown_report(payload: dict[str, Any]) -> str:
    p = payload["parameters"]
    newton = _by_key(payload["results"]).get("newton-random")
    newton_s = newton["fit_seconds_median"] if newton else None
    lines = common.report_head(
        payload,
        "Global-gradient LogisticRegression (fusion='newton') benchmark",
        data=[
            f"- data: {p['rows']:,} x {N_FEATURES} float64 (the rule of bench_linear.py), row "
            f"chunks of {p['chunks']:,}; held-out test {p['test_rows']:,} rows; label-sorted "
            "layout: the same rows sorted by label, chunks as long",
        ],
        notes=[
            f"- objective: unpenalised log-loss for every case (C=inf); scikit-learn and newton "
            f"stop at the largest gradient entry <= tol={p['tol']:g}; dask-ml keeps its own "
            "stopping rules",
            "- coef diff: max |coef - ref| / max |ref| against LogisticRegression(C=inf, "
            "tol=1e-10) on all rows (untimed); coef max rel.: max of |coef - ref| / |ref|",
            "- passes after start: len(history_) - 1 (the passes after the one-shot start; "
            "Newton steps in brackets)",
            "- fits interleaved: each of the repeats fits every case once, in the order of "
            "the table, so that the other load, which moves over minutes, weighs on every "
            "case alike",
        ],
        ratio_note=" Here `case s / newton s` divides by newton on random partitions.",
    )
    lines += ["", *common.md_head(COLUMNS)]
    lines += [_row(r, newton_s) for r in payload["results"]]
    passes = [r for r in payload["results"] if r.get("pass_seconds")]
    if passes:
        lines += ["", "Seconds of each pass of the last newton fit (pass 0: the one-shot start):"]
        lines += [
            f"- {r['key']}: " + ", ".join(f"{t:.2f}" for t in r["pass_seconds"]) for r in passes
        ]
    over = payload.get("overhead")
    if over:
        lines += [
            "",
            f"## Per-pass overhead at {over['partitions']} partitions",
            "",
            f"- newton on {over['rows']:,} x {N_FEATURES} rows in {over['partitions']} "
            f"partitions, fits {common.fmt_times(over['fit_seconds'])} s, {over['passes']} "
            "passes after the first each",
            f"- per later pass (median): {over['pass_seconds_median'] * 1000:.0f} ms wall, "
            f"partition work {over['partition_work_per_pass_seconds'] * 1000:.0f} ms "
            f"(the last pass's summed task_seconds / {over['slots']} slots), overhead "
            f"{over['overhead_per_pass_seconds'] * 1000:.0f} ms",
        ]
    lines += ["", "## Targets (issue 15, speed)", "", common.targets_table(payload["targets"])]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 1 repeat")
    parser.add_argument("--rows", type=int, help="training rows (default 2,000,000)")
    parser.add_argument("--chunks", type=int, help="rows per chunk (default 250,000)")
    parser.add_argument("--test-rows", type=int, help="held-out rows (default 200,000)")
    parser.add_argument("--repeats", type=int, help="fits per case (default 3)")
    parser.add_argument("--tol", type=float, default=1e-6, help="tol of newton and sklearn")
    parser.add_argument("--cases", nargs="+", help="some case keys")
    parser.add_argument("--overhead-partitions", type=int, default=64)
    parser.add_argument("--overhead-rows", type=int, default=1_000, help="rows per partition")
    parser.add_argument("--no-overhead", action="store_true", help="skip the overhead case")
    parser.add_argument("--out", type=common.Path, help="JSON path (default results/newton.json)")
    common.add_run_args(parser)
    args = parser.parse_args(argv)
    common.complete_args(args, "newton", DEFAULTS, QUICK_DEFAULTS)
    common.check_positive(
        parser, (args.rows, args.chunks, args.repeats, args.test_rows), "sizes must be >= 1"
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    from sklearn.linear_model import LogisticRegression

    with common.local_cluster(args.workers, args.threads, WARM_MODULES) as client:
        t0 = time.perf_counter()
        data = prepare(client, args.rows, args.chunks, args.seed)
        test = held_out(args.test_rows, args.seed)
        print(f"data prepared in {time.perf_counter() - t0:.1f} s", flush=True)
        reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000)
        reference.fit(data["X_np"], data["y_np"])
        baseline = common.settle(client)
        machine = common.machine_info(client)
        cases = [c for c in build_cases(args.tol) if not args.cases or c.key in args.cases]
        results = run_cases(cases, data, test, args, client, baseline, reference)
        over = None if args.no_overhead else overhead(client, args, baseline)
    parameters = {
        "quick": args.quick,
        "rows": args.rows,
        "chunks": args.chunks,
        "features": N_FEATURES,
        "test_rows": args.test_rows,
        "repeats": args.repeats,
        "tol": args.tol,
        "workers": args.workers,
        "threads": args.threads,
        "seed": args.seed,
    }
    common.write_run(
        args.out,
        "newton",
        t_start,
        parameters,
        machine,
        results,
        markdown_report,
        json_default=str,
        overhead=over,
        targets=targets(results, args.rows, over),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
