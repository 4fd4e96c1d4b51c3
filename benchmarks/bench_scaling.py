"""Strong scaling: the same fits on 1, 2, 4, 8 and 16 workers (1 thread each).

Issue 5, target 7: on a machine with 16 cores, the parallel efficiency
``t(1) / (p * t(p))`` at p = 16 workers should be at least 75% for the linear case
and for the forest case. One prepared script: it runs every worker count in turn on
fixed data and writes ``results/scaling.json`` / ``scaling.md`` after each one, so
what was measured survives an interruption; ``--budget`` seconds (default 450) stops
it from starting a worker count it may not finish in time. Nothing in CI depends on
it.

Cases (fixed data for every worker count, generated in each cluster from the same
seeds and persisted before timing)
    ``linear``: ``FusedClassifier(LogisticRegression(), fusion="weighted")`` on
    ``--rows`` x 20 rows in ``--partitions`` partitions (default 16,000,000 in 64).
    ``forest``: ``FusedClassifier(RandomForestClassifier(n_estimators=T / P),
    fusion="trees", random_state=0)`` on ``--forest-rows`` x 20 rows in
    ``--forest-partitions`` partitions, ``--trees`` trees in all (default 1,280,000
    rows, 32 partitions, 256 trees).

The sizes make t(16) a second or more, so that the fixed costs of a fit (graph
construction, the class pass, scheduling) do not dominate it.

The worker counts run in the order 1, the largest, then the others from large to
small, so that the pair the target needs (1 and 16) comes first. Worker counts above
the number of CPUs are skipped (recorded as such). Each worker has one thread and
one BLAS thread (dask's nanny sets it).

Usage
-----
::

    python benchmarks/bench_scaling.py                          # 1 2 4 8 16 (up to the CPUs)
    python benchmarks/bench_scaling.py --workers 1 2 --quick    # smoke run on a small machine

Results go to ``benchmarks/results/scaling.json`` and ``scaling.md`` (``--quick``:
``scaling_quick.*``); ``benchmarks/run.py`` collects the ``"targets"``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common as common
import numpy as np

DEFAULTS = {
    "rows": 16_000_000,
    "partitions": 64,
    "forest_rows": 1_280_000,
    "forest_partitions": 32,
    "trees": 256,
    "repeats": 3,
}
QUICK_DEFAULTS = {
    "rows": 160_000,
    "partitions": 16,
    "forest_rows": 32_000,
    "forest_partitions": 16,
    "trees": 32,
    "repeats": 1,
}
FEATURES = 20
#: issue 5, target 7
MIN_EFFICIENCY = 0.75
TARGET_WORKERS = 16
WARM_MODULES = ("sklearn.linear_model", "sklearn.ensemble", "daskfuse", "daskfuse.fusion")


def labelled_rows(rng: np.random.Generator, n: int, features: int):
    """``n`` rows of standard normal features and their 0/1 labels (``int64``): a
    linear rule plus a non-linear term, so that trees have something to find."""
    x = rng.standard_normal((n, features))
    logit = x @ np.linspace(-1.0, 1.0, features) + x[:, 0] * x[:, 1]
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def _block(n: int, block: int, *, features: int, seed: int, stream: int) -> np.ndarray:
    """Row block ``block``: :func:`labelled_rows`, the label as a last column."""
    x, y = labelled_rows(np.random.default_rng([seed, stream, block]), n, features)
    return np.column_stack([x, y.astype(np.float64)])


def make_data(rows: int, partitions: int, seed: int, stream: int):
    chunk = -(-rows // partitions)
    block = functools.partial(_block, features=FEATURES, seed=seed, stream=stream)
    return common.make_dask_data(block, rows, FEATURES, chunk)


def build_cases(args: argparse.Namespace) -> list[dict[str, Any]]:
    def linear():
        from sklearn.linear_model import LogisticRegression

        from daskfuse import FusedClassifier

        return FusedClassifier(LogisticRegression(), fusion="weighted")

    def forest():
        from sklearn.ensemble import RandomForestClassifier

        from daskfuse import FusedClassifier

        per = max(1, round(args.trees / args.forest_partitions))
        return FusedClassifier(
            RandomForestClassifier(n_estimators=per), fusion="trees", random_state=0
        )

    return [
        {
            "key": "linear",
            "label": "FusedClassifier(LogisticRegression), weighted",
            "make": linear,
            "rows": args.rows,
            "partitions": args.partitions,
            "stream": 0,
        },
        {
            "key": "forest",
            "label": f"FusedClassifier(RandomForestClassifier), trees ({args.trees} in all)",
            "make": forest,
            "rows": args.forest_rows,
            "partitions": args.forest_partitions,
            "stream": 1,
        },
    ]


def worker_order(counts: list[int]) -> list[int]:
    """1 first, then the largest, then the rest from large to small."""
    counts = sorted(set(counts))
    head = [c for c in counts if c == 1]
    return head + sorted((c for c in counts if c != 1), reverse=True)


def run_count(p: int, args, cases) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every case on a fresh cluster of ``p`` workers; (results, machine information)."""
    out = []
    t0 = time.perf_counter()
    with common.local_cluster(p, args.threads, WARM_MODULES) as client:
        startup = time.perf_counter() - t0
        machine = common.machine_info(client)
        for case in cases:
            rec = {
                "case": case["key"],
                "label": case["label"],
                "workers": p,
                "rows": case["rows"],
                "partitions": case["partitions"],
                "cluster_startup_seconds": startup,
                "loadavg_before": common.loadavg(),
                "status": "ok",
            }
            print(f"-> {case['key']} on {p} worker(s) x{args.repeats} ...", end=" ", flush=True)
            times = common.FitTimes()
            try:
                X, y = client.persist(
                    list(make_data(case["rows"], case["partitions"], args.seed, case["stream"]))
                )
                common.wait([X, y])
                baseline = common.settle(client)
                model, _ = common.time_fits(
                    case["make"](), (X, y), args.repeats, client, baseline, times=times
                )
                rec.update(
                    fit_seconds=times.seconds,
                    fit_seconds_median=times.median,
                    memory=times.memory,
                    workers_used=int(model.partition_report_["worker"].nunique()),
                    **common.daskfuse_breakdown(model, times.median, common.slots(client)),
                )
                print(f"{times.median:.2f} s", flush=True)
                if p > 1:
                    # one more fit, untimed, under the task stream: where the wall went
                    rec["timeline"] = timeline(case["make"](), X, y, client)
                del X, y, model
                common.settle(client)
            except Exception as exc:  # a failing case must not stop the run
                rec.update(common.error_fields(exc))
                rec["fit_seconds"] = times.seconds
                print(f"ERROR {rec['error'][:200]}", flush=True)
            out.append(rec)
    return out, machine


def timeline(template: Any, X: Any, y: Any, client: Any) -> dict[str, float]:
    """Seconds from ``fit()`` to the first fit task, and from the last one to the end.

    ``start``: validation, the class pass and graph submission; ``tail``: the
    combine tree, the root and the fused model's way back to the client; ``fits``:
    the first fit task's start to the last one's end (imbalance shows as ``fits``
    above the mean partition time per worker).
    """
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        t0 = time.time()
        template.fit(X, y)
        t1 = time.time()
    spans = [
        (s["start"], s["stop"])
        for d in stream.data
        if "daskfuse-fit" in str(d["key"])
        for s in d["startstops"]
        if s["action"] == "compute"
    ]
    if not spans:
        return {}
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    return {"wall": t1 - t0, "start": first - t0, "fits": last - first, "tail": t1 - last}


def efficiencies(results: list[dict[str, Any]]) -> None:
    """Add speed-up and efficiency ``t(1) / (p * t(p))`` to every row that has a t(1)."""
    t1 = {
        r["case"]: r["fit_seconds_median"]
        for r in results
        if r["workers"] == 1 and r["status"] == "ok"
    }
    for r in results:
        if r["status"] == "ok" and r["case"] in t1:
            r["speedup"] = t1[r["case"]] / r["fit_seconds_median"]
            r["efficiency"] = r["speedup"] / r["workers"]


def targets(results: list[dict[str, Any]], cpus: int | None) -> list[dict[str, Any]]:
    out = []
    for tid, case in (("7a", "linear"), ("7b", "forest")):
        rows = [r for r in results if r["case"] == case and "efficiency" in r]
        at16 = next((r for r in rows if r["workers"] == TARGET_WORKERS), None)
        label = next((r["label"] for r in results if r["case"] == case), case)
        what = f"{label}: parallel efficiency t(1) / (16 t(16)) at 16 workers"
        if at16 is None:
            best = max(rows, key=lambda r: r["workers"], default=None)
            detail = f"16 workers not measured ({cpus} CPUs)" + (
                f"; largest measured: {best['workers']} workers, efficiency "
                f"{100 * best['efficiency']:.0f}%"
                if best
                else ""
            )
            out.append(
                common.target("7", tid, what, None, ">=", 100 * MIN_EFFICIENCY, "%", detail=detail)
            )
            continue
        curve = ", ".join(
            f"p={r['workers']}: {100 * r['efficiency']:.0f}%"
            for r in sorted(rows, key=lambda r: r["workers"])
        )
        out.append(
            common.target(
                "7",
                tid,
                what,
                100 * at16["efficiency"],
                ">=",
                100 * MIN_EFFICIENCY,
                "%",
                digits=0,
                detail=f"t(1) {at16['fit_seconds_median'] * at16['speedup']:.2f} s, t(16) "
                f"{at16['fit_seconds_median']:.2f} s; {curve}",
            )
        )
    return out


def _timeline_cell(r: dict[str, Any]) -> str:
    t = r.get("timeline")
    if not t:
        return "—"
    return f"{t['start']:.2f} / {t['fits']:.2f} / {t['tail']:.2f}"


def markdown_report(payload: dict[str, Any]) -> str:
    p = payload["parameters"]
    m = payload["machine"]
    lines = [
        "# Strong-scaling benchmark" + (" (quick)" if p["quick"] else ""),
        "",
        f"- run: {payload['timestamp']} ({payload['wall_seconds']:.0f} s wall in all"
        + ("; incomplete: " + payload["incomplete"] if payload.get("incomplete") else "")
        + ")",
        f"- machine: {m['cpu_count']} CPUs, {m.get('memory_gib')} GiB, {m['platform']}, load "
        f"average at start {common.loads(m.get('loadavg_at_start'))}, at end "
        f"{common.loads(m.get('loadavg_at_end'))}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- LocalCluster(n_workers=p, threads_per_worker={p['threads']}, processes=True), one "
        f"fresh cluster per p; median of {p['repeats']} fit(s); workers asked "
        f"{p['workers_asked']}, run in the order {p['worker_order']}"
        + (f"; skipped {p['skipped']}" if p.get("skipped") else ""),
        f"- linear: {p['rows']:,} x {FEATURES} in {p['partitions']} partitions; forest: "
        f"{p['forest_rows']:,} x {FEATURES} in {p['forest_partitions']} partitions, "
        f"{p['trees']} trees in all",
        "- efficiency = t(1) / (p * t(p)); speed-up = t(1) / t(p)",
        common.MEMORY_LINE,
        "",
        *common.md_head(
            [
                "case",
                "workers",
                "fit s (median)",
                "fit s (all)",
                "speed-up",
                "efficiency",
                "workers used",
                "partition tasks s (sum)",
                "tasks / (p x wall)",
                "start / fits / tail s",
                "peak MiB",
                "cluster start s",
                "load before",
                "note",
            ]
        ),
    ]
    for r in sorted(payload["results"], key=lambda r: (r["case"], r["workers"])):
        peak, _ = common.memory_cells(r.get("memory"), "dask")
        eff = r.get("efficiency")
        lines.append(
            f"| {r['label']} | {r['workers']} | {common.fmt(r.get('fit_seconds_median'))} | "
            f"{common.fmt_times(r.get('fit_seconds', []))} | {common.fmt(r.get('speedup'))} | "
            f"{'—' if eff is None else f'{100 * eff:.0f}%'} | {r.get('workers_used', '—')} | "
            f"{common.fmt(r.get('partition_task_seconds_sum'))} | "
            f"{common.fmt(r.get('partition_tasks_share'))} | {_timeline_cell(r)} | {peak} | "
            f"{common.fmt(r.get('cluster_startup_seconds'), 1)} | "
            f"{common.loads(r.get('loadavg_before'))} | {common.md_cell(r.get('error', ''), 200)} |"
        )
    lines += common.targets_section(payload["targets"], 7)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, 1 repeat")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8, 16],
        help="worker counts (those above the CPU count are skipped)",
    )
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--rows", type=int, help="linear case rows (default 16,000,000)")
    parser.add_argument("--partitions", type=int, help="linear case partitions (default 64)")
    parser.add_argument("--forest-rows", type=int, help="forest case rows (default 1,280,000)")
    parser.add_argument("--forest-partitions", type=int, help="forest partitions (default 32)")
    parser.add_argument("--trees", type=int, help="trees in all (default 256)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3)")
    parser.add_argument(
        "--budget",
        type=float,
        default=450.0,
        help="seconds: no worker count is started when the last one's time would overrun it",
    )
    parser.add_argument(
        "--allow-oversubscribe", action="store_true", help="run worker counts above the CPUs too"
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=["linear", "forest"],
        default=["linear", "forest"],
        help="cases to run",
    )
    common.add_run_args(parser, cluster=False)
    parser.add_argument("--out", type=Path, help="JSON output (default results/scaling.json)")
    args = parser.parse_args(argv)
    common.complete_args(args, "scaling", DEFAULTS, QUICK_DEFAULTS)
    counts = (*args.workers, args.rows, args.partitions, args.forest_rows, args.trees)
    common.check_positive(parser, counts, "worker counts, sizes and repeats must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    cpus = os.cpu_count() or 1
    order = worker_order(args.workers)
    skipped = {}
    if not args.allow_oversubscribe:
        for p in order:
            if p > cpus:
                skipped[p] = f"more workers than CPUs ({cpus})"
        order = [p for p in order if p not in skipped]
    cases = [c for c in build_cases(args) if c["key"] in args.cases]
    results: list[dict[str, Any]] = []
    machine: dict[str, Any] = {}
    parameters = {
        "quick": args.quick,
        "workers_asked": sorted(set(args.workers)),
        "worker_order": order,
        "threads": args.threads,
        "rows": args.rows,
        "partitions": args.partitions,
        "forest_rows": args.forest_rows,
        "forest_partitions": args.forest_partitions,
        "trees": args.trees,
        "cases": args.cases,
        "repeats": args.repeats,
        "seed": args.seed,
        "budget_seconds": args.budget,
        "skipped": skipped,
    }

    def write(incomplete: str = "") -> None:
        efficiencies(results)
        common.write_run(
            args.out,
            "scaling",
            t_start,
            parameters,
            machine,
            results,
            markdown_report,
            targets=targets(results, cpus),
            incomplete=incomplete,
        )

    last = 0.0
    for i, p in enumerate(order):
        elapsed = time.perf_counter() - t_start
        if i and elapsed + last > args.budget:
            for q in order[i:]:
                skipped[q] = f"time budget ({args.budget:.0f} s) would be exceeded"
            break
        t0 = time.perf_counter()
        rows, info = run_count(p, args, cases)
        results += rows
        if not machine:
            machine.update(info)
            for key in ("workers", "threads_per_worker", "loadavg_at_end"):
                machine.pop(key, None)
        last = time.perf_counter() - t0
        write(incomplete="" if i == len(order) - 1 else f"measured so far: {order[: i + 1]}")
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
