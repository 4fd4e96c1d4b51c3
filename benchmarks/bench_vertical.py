"""Vertical partitioning benchmark: column blocks against row partitions and one process.

Three generated binary data sets, ``rows x 24`` features laid over 4 column blocks of 6
contiguous features (and, for the horizontal cases, over row blocks of all features):

``additive``
    the log-odds are a linear function of all 24 features, its weight spread over
    every block (no block alone knows much), with a shared latent factor that makes
    features of different blocks correlated (backfitting needs real rounds). The
    linear model is right; fitted with ``LogisticRegression``.
``interaction``
    the log-odds are ``3 * x0 * x6 + 3 * x12 * x18`` plus a small additive part: two
    products of features that lie in different blocks. A block model sees one factor
    of each product, which alone says nothing about it: stacking's known weakness,
    and reported as it is. Fitted with ``HistGradientBoostingClassifier`` (trees
    find interactions), and with ``LogisticRegression`` as the linear reference.
``correlated``
    as ``additive``, but every feature is the shared factor plus a little noise
    (pairwise correlations about 0.96): hard for backfitting's block-by-block rounds,
    the case of the global-gradient fusion. Fitted with ``LogisticRegression``.

Cases (keys)
------------
``vertical-gradient`` ``FusedClassifier(LogisticRegression(), partition=Columns(),
                      fusion="gradient")`` (global-gradient L-BFGS passes, blocks in
                      parallel) on the rows x columns grid (additive)
``vertical-backfit``  ``FusedClassifier(LogisticRegression(), partition=Columns(),
                      fusion="backfit")`` on the rows x columns grid (additive, and
                      interaction as the linear reference)
``vertical-stack``    ``FusedClassifier(est, partition=Columns(), fusion=ColumnStack(cv=3))``
                      on the grid
``horizontal``        ``FusedClassifier(est)`` (``fusion="auto"``: weighted averaging for
                      the linear model, soft vote for the boosted trees) on row blocks
``central``           ``est`` fitted in the driver process on NumPy

What is timed: only ``fit``, as in the other scripts (``_common.py``): the data are
generated and persisted in the cluster before timing, twice (row blocks with every
column for the horizontal cases, a rows x columns grid whose column chunks are the
blocks for the vertical ones), and gathered once as NumPy for the one-process
cases. Accuracy is measured afterwards on held-out rows from the same distribution.
For backfitting, ``rounds`` is the number of Gauss-Seidel rounds (for the
global-gradient fusion: its passes, the gradient at zero included) and ``coef diff``
the largest coefficient difference relative to the largest coefficient of a
tightly converged one-process ``LogisticRegression(tol=1e-10)`` (the timed
one-process fit uses scikit-learn's default ``tol=1e-4``).

Usage
-----
::

    python benchmarks/bench_vertical.py --quick   # 40,000 rows, 1 repeat
    python benchmarks/bench_vertical.py           # 200,000 rows, 3 repeats
    # the same in pieces (a busy machine), merged into one results file:
    python benchmarks/bench_vertical.py --only additive
    python benchmarks/bench_vertical.py --only interaction --cases central vertical-stack --merge

``--merge`` keeps the other cases of an existing results file (each record carries
the time and load average of its own run).

Results go to ``benchmarks/results/vertical.json`` and ``vertical.md``
(``--quick``: ``vertical_quick.*``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any

import _common as common
import numpy as np

N_FEATURES = 24
BLOCK = 6  # features per column block
DATASETS = ("additive", "interaction", "correlated")
TITLES = {
    "additive": "Informative features spread across blocks (additive log-odds)",
    "interaction": "Features that interact across blocks (x0*x6 + x12*x18)",
    "correlated": "Every pair of features correlated above 0.95 (additive log-odds)",
}
DEFAULTS = {"rows": 200_000, "repeats": 3}
QUICK_DEFAULTS = {"rows": 40_000, "repeats": 1}
WARM_MODULES = (
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.model_selection",
    "scipy.optimize",
    "daskfuse",
    "daskfuse.vertical",
)


# --------------------------------------------------------------------------- data


def _block(n: int, block: int, *, dataset: str, seed: int) -> np.ndarray:
    """Row block ``block``: ``n`` rows of 24 features and the label in a last column."""
    rng = np.random.default_rng([seed, DATASETS.index(dataset), block])
    latent = rng.standard_normal((n, 1))
    x = rng.standard_normal((n, N_FEATURES))
    if dataset in ("additive", "correlated"):
        # correlated: one shared factor, pairwise correlations about 0.96
        x = latent + 0.2 * x if dataset == "correlated" else x + 0.7 * latent
        w = np.random.default_rng([seed, 99]).uniform(0.2, 0.6, N_FEATURES)
        w *= np.where(np.arange(N_FEATURES) % 2, -1.0, 1.0)
        eta = x @ w + 0.3
    else:
        eta = 3.0 * (x[:, 0] * x[:, 6] + x[:, 12] * x[:, 18]) + 0.3 * x[:, 1:24:4].sum(axis=1)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    return np.column_stack([x, y])


def prepare(dataset: str, rows: int, test_rows: int, chunk: int, seed: int, client: Any):
    """Persist the rows layout and the grid layout of one data set; gather NumPy copies."""
    make = functools.partial(_block, dataset=dataset, seed=seed)
    X, y = common.make_dask_data(make, rows, N_FEATURES, chunk)
    grid = X.rechunk({1: BLOCK})
    X, grid, y = client.persist([X, grid, y])
    common.wait([X, grid, y])
    X_np, y_np = (common.as_local(common.gather_blocks(client, a)) for a in (X, y))
    test = np.vstack(
        [
            _block(min(chunk, test_rows - i), 10_000 + i // chunk, dataset=dataset, seed=seed)
            for i in range(0, test_rows, chunk)
        ]
    )
    return {
        "rows": rows,
        "partitions": X.numblocks[0],
        "X": X,
        "grid": grid,
        "y": y,
        "X_np": X_np,
        "y_np": y_np.astype(np.int64),
        "X_test": test[:, :N_FEATURES],
        "y_test": test[:, N_FEATURES].astype(np.int64),
    }


# -------------------------------------------------------------------------- cases


def cases(args: argparse.Namespace) -> dict[str, list[tuple[str, str, str, Any, str]]]:
    """Per data set: (key, label, library, estimator, input) with input in rows/grid/numpy."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from daskfuse import FusedClassifier
    from daskfuse.partition import Columns
    from daskfuse.vertical import ColumnStack

    lr = LogisticRegression()
    hgb = HistGradientBoostingClassifier(max_iter=args.hgb_iter, random_state=0)
    cols = Columns()  # the grid's column chunks: 4 blocks of 6 features
    stack = ColumnStack(cv=3)
    linear = [  # the linear column fusions
        (
            f"vertical-{fusion}",
            f"FusedClassifier(LogisticRegression), Columns, {fusion}",
            "daskfuse",
            FusedClassifier(lr, partition=cols, fusion=fusion),
            "grid",
        )
        for fusion in ("gradient", "backfit")
    ]
    return {
        "additive": [
            *linear,
            (
                "vertical-stack",
                "FusedClassifier(LogisticRegression), Columns, stack",
                "daskfuse",
                FusedClassifier(lr, partition=cols, fusion=stack, random_state=0),
                "grid",
            ),
            (
                "horizontal",
                "FusedClassifier(LogisticRegression), row blocks, auto (weighted)",
                "daskfuse",
                FusedClassifier(lr),
                "rows",
            ),
            ("central", "LogisticRegression, one process", "scikit-learn", lr, "numpy"),
        ],
        "interaction": [
            (
                "vertical-stack",
                f"FusedClassifier(HGB({args.hgb_iter})), Columns, stack",
                "daskfuse",
                FusedClassifier(hgb, partition=cols, fusion=stack, random_state=0),
                "grid",
            ),
            (
                "horizontal",
                f"FusedClassifier(HGB({args.hgb_iter})), row blocks, auto (soft vote)",
                "daskfuse",
                FusedClassifier(hgb, random_state=0),
                "rows",
            ),
            (
                "central",
                f"HistGradientBoostingClassifier(max_iter={args.hgb_iter}), one process",
                "scikit-learn",
                hgb,
                "numpy",
            ),
            (
                "vertical-backfit-linear",
                "FusedClassifier(LogisticRegression), Columns, backfit",
                "daskfuse",
                FusedClassifier(lr, partition=cols, fusion="backfit"),
                "grid",
            ),
            ("central-linear", "LogisticRegression, one process", "scikit-learn", lr, "numpy"),
        ],
        "correlated": [
            *linear,
            ("central", "LogisticRegression, one process", "scikit-learn", lr, "numpy"),
        ],
    }


def run_info(t_start: float) -> dict[str, Any]:
    """When the case ran and how loaded the machine was (records of merged runs differ)."""
    from datetime import UTC, datetime

    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg": common.loadavg(),
    }


def run_case(key, label, library, template, on, ds, args, client, baseline, reference):
    X = {"grid": ds["grid"], "rows": ds["X"], "numpy": ds["X_np"]}[on]
    y = ds["y_np"] if on == "numpy" else ds["y"]
    rec: dict[str, Any] = {
        "key": key,
        "label": label,
        "library": library,
        "fit_on": "driver (NumPy)" if on == "numpy" else f"cluster (dask, {on})",
        "rows": ds["rows"],
        "status": "ok",
    }
    try:
        model, times = common.time_fits(template, (X, y), args.repeats, client, baseline)
    except Exception as exc:  # a failing case is recorded; the run goes on
        rec.update(common.error_fields(exc))
        print(f"  {key}: ERROR {rec['error']}", flush=True)
        return rec
    rec["fit_seconds"] = times.seconds
    rec["fit_seconds_median"] = times.median
    if times.warnings:
        rec["warnings"] = sorted(set(times.warnings))
    rec["accuracy"] = float(np.mean(model.predict(ds["X_test"]) == ds["y_test"]))
    rec["blocks"] = int(getattr(model, "n_partitions_", 1))
    fused = getattr(model, "fused_estimator_", model)
    rec["fused_model"] = type(fused).__name__
    if hasattr(model, "history_"):
        rec["rounds"] = len(model.history_)
        if reference is not None:
            diff = np.max(np.abs(fused.coef_ - reference.coef_)) / np.max(np.abs(reference.coef_))
            rec["coef_max_rel_diff"] = float(diff)
    print(
        f"  {key:24s} fit {times.median:7.2f} s  accuracy {rec['accuracy']:.4f}"
        + (f"  rounds {rec['rounds']}" if "rounds" in rec else ""),
        flush=True,
    )
    return rec


# ------------------------------------------------------------------------- report


def markdown_report(payload: dict[str, Any]) -> str:
    p = payload["parameters"]
    lines = [
        "# Vertical partitioning benchmark",
        "",
        *common.header_lines(
            payload,
            data=[
                f"- data: {p['rows']:,} training rows x {N_FEATURES} features "
                f"(row chunks of {p['chunk']:,}: {p['partitions']} row blocks; 4 column blocks "
                f"of {BLOCK} features for the vertical cases), {p['test_rows']:,} held-out rows",
            ],
            notes=[
                "- load after: the 1-minute load average when the case finished (the "
                "cases may come from several runs merged with --merge; the header's run "
                "and load are the last run's)",
                f"- HGB = HistGradientBoostingClassifier(max_iter={p['hgb_iter']}); one-process "
                "fits use the driver's threads (BLAS/OpenMP), the workers one thread each",
                "- coef diff: the column fusion's largest coefficient difference relative to the "
                "largest coefficient of LogisticRegression(tol=1e-10) on all columns",
            ],
            ratio_note=" (here: central fit s / case fit s, within a data set)",
        ),
    ]
    for name in DATASETS:
        rows = [r for r in payload["results"] if r["dataset"] == name]
        if not rows:
            continue
        central = {
            r["key"]: r.get("fit_seconds_median") for r in rows if r["key"].startswith("central")
        }
        lines += [
            "",
            f"## {TITLES[name]}",
            "",
            *common.md_head(
                [
                    "case",
                    "fit on",
                    "blocks",
                    "fit s (median)",
                    "fit s (all)",
                    "held-out accuracy",
                    "rounds",
                    "coef diff",
                    "central s / case s",
                    "load after",
                ]
            ),
        ]
        for r in rows:
            if r["status"] != "ok":
                lines.append(
                    f"| {r['label']} | {r['fit_on']} | — | — | — | — | — | — | "
                    f"{common.md_cell(r['error'], 80)} | — |"
                )
                continue
            anchor = central.get("central-linear" if "linear" in r["key"] else "central")
            ratio = anchor / r["fit_seconds_median"] if anchor and r["key"] not in central else None
            diff = r.get("coef_max_rel_diff")
            lines.append(
                f"| {r['label']} | {r['fit_on']} | {r['blocks']} | "
                f"{r['fit_seconds_median']:.2f} | {common.fmt_times(r['fit_seconds'])} | "
                f"{r['accuracy']:.4f} | {r.get('rounds', '—')} | "
                f"{'—' if diff is None else f'{diff:.1e}'} | {common.fmt(ratio)} | "
                f"{common.fmt((r.get('run', {}).get('loadavg') or [None])[0])} |"
            )
    lines += ["", *payload.get("findings", [])]
    return "\n".join(lines) + "\n"


def findings(results: list[dict[str, Any]]) -> list[str]:
    """Plain sentences read off the results (accuracy gaps to the one-process fit)."""
    out = []
    for name in DATASETS:
        acc = {
            r["key"]: r["accuracy"] for r in results if r["dataset"] == name and r["status"] == "ok"
        }
        if "central" not in acc:
            continue
        gaps = ", ".join(
            f"{k} {acc[k] - acc['central']:+.4f}" for k in acc if not k.startswith("central")
        )
        out.append(f"- {name}: held-out accuracy minus the one-process model's: {gaps}")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 40,000 rows, 1 repeat")
    parser.add_argument("--rows", type=int, help="training rows (default 200,000)")
    parser.add_argument("--chunk", type=int, help="rows per row chunk (default rows / 4)")
    parser.add_argument("--test-rows", type=int, default=50_000, help="held-out rows")
    parser.add_argument("--repeats", type=int, help="fits per case, median reported (default 3)")
    parser.add_argument("--hgb-iter", type=int, default=30, help="boosting iterations of HGB")
    parser.add_argument("--only", nargs="+", choices=DATASETS, help="some data sets")
    parser.add_argument("--cases", nargs="+", help="some case keys (e.g. central vertical-stack)")
    parser.add_argument(
        "--merge", action="store_true", help="keep the other cases of the existing results file"
    )
    parser.add_argument("--out", type=common.Path, help="JSON path (default results/vertical.json)")
    common.add_run_args(parser)
    args = parser.parse_args(argv)
    common.complete_args(args, "vertical", DEFAULTS, QUICK_DEFAULTS)
    if args.chunk is None:
        args.chunk = -(-args.rows // 4)
    if args.quick:
        args.test_rows = min(args.test_rows, 20_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    partitions = None
    with common.local_cluster(args.workers, args.threads, WARM_MODULES) as client:
        data = {}
        for name in args.only or DATASETS:
            t0 = time.perf_counter()
            data[name] = prepare(name, args.rows, args.test_rows, args.chunk, args.seed, client)
            partitions = data[name]["partitions"]
            print(f"data {name}: prepared in {time.perf_counter() - t0:.1f} s", flush=True)
        baseline = common.settle(client)
        machine = common.machine_info(client)
        from sklearn.linear_model import LogisticRegression

        for name, ds in data.items():
            print(f"== {TITLES[name]}", flush=True)
            reference = LogisticRegression(tol=1e-10, max_iter=10_000).fit(ds["X_np"], ds["y_np"])
            for key, label, library, template, on in cases(args)[name]:
                if args.cases and key not in args.cases:
                    continue
                rec = run_case(
                    key, label, library, template, on, ds, args, client, baseline, reference
                )
                results.append({"dataset": name, **rec, "run": run_info(t_start)})
    parameters = {
        "quick": args.quick,
        "rows": args.rows,
        "chunk": args.chunk,
        "partitions": partitions,
        "test_rows": args.test_rows,
        "features": N_FEATURES,
        "block_features": BLOCK,
        "repeats": args.repeats,
        "hgb_iter": args.hgb_iter,
        "workers": args.workers,
        "threads": args.threads,
        "seed": args.seed,
    }
    if args.merge and args.out.exists():
        import json

        done = {(r["dataset"], r["key"]) for r in results}
        old = json.loads(args.out.read_text())["results"]
        results = [r for r in old if (r["dataset"], r["key"]) not in done] + results
        order = {
            (d, c[0]): i
            for i, (d, c) in enumerate((d, c) for d, cs in cases(args).items() for c in cs)
        }
        results.sort(key=lambda r: order.get((r["dataset"], r["key"]), len(order)))
    common.write_run(
        args.out,
        "vertical",
        t_start,
        parameters,
        machine,
        results,
        markdown_report,
        json_default=str,
        findings=findings(results),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
