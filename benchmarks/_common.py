"""Helpers shared by the benchmark scripts (``bench_*.py``, ``ceiling.py``, ``run.py``).

The scripts run as ``python benchmarks/bench_*.py``: their own folder is then first on
``sys.path`` (and, through it, on the spawned workers' path), so they import this module
as ``_common``. It holds what they do the same way: the results folder and file names,
the command-line plumbing (parser, common options, defaults, checks), the cluster and
its warm-up, data generation in row blocks, the untimed barrier and the timing loop
around ``fit``, machine information, the common JSON fields, writing the JSON and
markdown of a run, markdown header lines and tables, and small formatting helpers.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.array.core import concatenate3
from distributed import Client, LocalCluster, futures_of, wait

RESULTS_DIR = Path(__file__).resolve().parent / "results"

DATA_NOTE = (
    "Data are generated and persisted in the cluster before timing (and gathered "
    "once as NumPy for the single-process anchors, as aligned C-ordered arrays): only "
    "fit() is timed."
)
RATIO_DEFINITION = "anchor_seconds / daskfuse_seconds (median fit seconds, same data)"
RATIO_LINE = (
    "- ratios are anchor_seconds / daskfuse_seconds on the same data: > 1 means daskfuse "
    "fitted faster."
)

#: (name shown, module imported) for the versions recorded with every run
VERSION_MODULES = (
    ("daskfuse", "daskfuse"),
    ("dask", "dask"),
    ("distributed", "distributed"),
    ("scikit-learn", "sklearn"),
    ("dask-ml", "dask_ml"),
    ("dask-glm", "dask_glm"),
    ("numpy", "numpy"),
    ("pandas", "pandas"),
)


# --------------------------------------------------------------------------- data


def make_dask_data(
    block: Callable[[int, int], np.ndarray],
    n_rows: int,
    n_features: int,
    chunk_rows: int,
    y_dtype: Any = np.int64,
) -> tuple[da.Array, da.Array]:
    """Lazily generate ``X`` (float64) and ``y`` with row chunks of ``chunk_rows``.

    ``block(n, i)`` returns the ``i``-th row block: ``n`` rows of ``n_features``
    feature columns plus a last column holding the target. ``y`` is that column cast
    to ``y_dtype`` (``None`` keeps it float64).
    """
    sizes = [chunk_rows] * (n_rows // chunk_rows)
    if n_rows % chunk_rows:
        sizes.append(n_rows % chunk_rows)
    blocks = [
        da.from_delayed(
            dask.delayed(block)(n, i),
            shape=(n, n_features + 1),
            dtype=np.float64,
        )
        for i, n in enumerate(sizes)
    ]
    z = da.concatenate(blocks, axis=0)
    y = z[:, n_features]
    # each X block its own C-ordered array, as one read from storage is (a column
    # slice alone is a strided view of the block, which estimators copy first)
    X = z[:, :n_features].map_blocks(np.ascontiguousarray, dtype=np.float64)
    return X, (y if y_dtype is None else y.astype(y_dtype))


def persist_and_gather(client: Any, X: da.Array, y: da.Array) -> tuple[Any, Any, Any, Any]:
    """Persist ``X`` and ``y`` in the cluster, wait for them, and gather NumPy copies.

    Returns ``(X, y, X_np, y_np)`` with ``X`` and ``y`` the persisted dask arrays.
    """
    X, y = client.persist([X, y])
    wait([X, y])
    X_np, y_np = (as_local(gather_blocks(client, a)) for a in (X, y))
    return X, y, X_np, y_np


def gather_blocks(client: Any, a: da.Array) -> np.ndarray:
    """The persisted dask array ``a`` as one NumPy array, its blocks sent to the driver.

    ``client.compute(a)`` would first concatenate the blocks in a task on one worker,
    which then keeps a copy of every block: the scheduler runs every later task on
    that worker (the other one idles), and half of them on copies that
    ``distributed`` delivered unaligned (see :func:`as_local`), which each fit task
    then copies again.
    """
    futures = {f.key: f for f in futures_of(a)}
    blocks = client.gather(_nested(a.__dask_keys__(), futures))
    return concatenate3(blocks)


def _nested(keys: Any, futures: dict[Any, Any]) -> Any:
    return [_nested(k, futures) for k in keys] if isinstance(keys, list) else futures[keys]


def as_local(a: Any) -> np.ndarray:
    """A gathered array as a C-ordered, aligned NumPy array, as one loaded locally is.

    ``distributed`` can hand back an array whose data start at an odd byte offset
    of the received frame (NumPy's ``aligned`` flag False); scikit-learn then runs
    several times slower on it (5x for ``LogisticRegression``), which would slow
    the single-process anchors for a reason no user loading their data meets.
    """
    return np.require(np.asarray(a), requirements=["A", "C"])


# ------------------------------------------------------------------------ cluster


def _import_all(modules: Sequence[str]) -> None:
    for mod in modules:
        try:
            importlib.import_module(mod)
        except Exception:  # a missing module fails in its own case
            pass


def warm_workers(client: Any, modules: Sequence[str]) -> None:
    """Import ``modules`` in each worker and here, so no case pays for the first import."""
    client.run(_import_all, tuple(modules))
    _import_all(modules)


@contextmanager
def local_cluster(
    workers: int, threads: int, warm: Sequence[str], **cluster_kwargs: Any
) -> Iterator[Any]:
    """A client of a fresh ``LocalCluster`` (worker processes), warmed up with ``warm``.

    ``cluster_kwargs`` go to ``LocalCluster`` (e.g. ``memory_limit``).
    """
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=True,
        dashboard_address=":0",
        **cluster_kwargs,
    )
    client = Client(cluster)
    try:
        print(f"cluster: {cluster}", flush=True)
        warm_workers(client, warm)
        yield client
    finally:
        client.close()
        cluster.close()


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


# ------------------------------------------------------------------------- memory

MIB = 2**20


def _read_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process in bytes, from /proc (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value, _unit = line.split()
                out[name[:-1]] = int(value) * 1024
    return out


def rss_reset() -> dict[str, Any]:
    """Reset this process's peak RSS to its current RSS; return that RSS.

    Runs in the driver and, through ``client.run``, in every worker. On Linux
    writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM``, the kernel's exact
    high-water mark, so no peak between two samples is missed. Elsewhere ``hwm`` is
    False and :class:`PeakMemory` falls back to sampling.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return {"rss": _read_status()["VmRSS"], "hwm": True}
    except OSError:
        import psutil

        return {"rss": psutil.Process().memory_info().rss, "hwm": False}


def rss_peak() -> dict[str, Any]:
    """This process's current RSS and its peak since :func:`rss_reset` (Linux)."""
    try:
        status = _read_status()
        return {"rss": status["VmRSS"], "peak": status["VmHWM"]}
    except OSError:
        import psutil

        rss = psutil.Process().memory_info().rss
        return {"rss": rss, "peak": rss}


def rss_now() -> int:
    """This process's current RSS in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """Peak resident memory of every worker process and of the driver during a block.

    Measured the same way for every library: before the block each process's peak
    RSS is reset (``/proc/self/clear_refs``, Linux), after it the kernel's
    high-water mark ``VmHWM`` is read, in each worker (``client.run``) and in this
    process. Where the reset is not possible, a background thread samples the RSS
    every ``interval`` seconds instead (``method`` says which). Both calls happen
    outside the timed region. ``result()`` gives, in MiB: the largest worker peak,
    the largest rise of a worker over its RSS before the block, the sum of the
    workers' peaks, and the driver's peak and rise.
    """

    def __init__(self, client: Any | None, interval: float = 0.1):
        self.client = client
        self.interval = interval
        self._stop = None
        self._thread = None
        self._samples: dict[str, int] = {}

    def _run(self, fn: Callable[[], Any]) -> dict[str, Any]:
        return {} if self.client is None else self.client.run(fn)

    def __enter__(self) -> PeakMemory:
        self.before = self._run(rss_reset)
        self.driver_before = rss_reset()
        self.hwm = self.driver_before["hwm"] and all(v["hwm"] for v in self.before.values())
        if not self.hwm:
            import threading

            self._stop = threading.Event()
            self._samples = {w: v["rss"] for w, v in self.before.items()}
            self._samples["driver"] = self.driver_before["rss"]
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                now = {**self._run(rss_now), "driver": rss_now()}
            except Exception:  # the cluster may be busy or closing; skip a sample
                continue
            for w, v in now.items():
                self._samples[w] = max(self._samples.get(w, 0), v)

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.after = self._run(rss_peak)
        self.driver_after = rss_peak()

    def result(self) -> dict[str, Any]:
        """Peaks and rises in MiB (see the class docstring)."""
        if self.hwm:
            peaks = {w: v["peak"] for w, v in self.after.items()}
            driver_peak = self.driver_after["peak"]
        else:
            peaks = {w: max(self._samples.get(w, 0), v["rss"]) for w, v in self.after.items()}
            driver_peak = max(self._samples.get("driver", 0), self.driver_after["rss"])
        rises = [peaks[w] - self.before[w]["rss"] for w in peaks if w in self.before]
        method = "VmHWM (reset per fit)" if self.hwm else f"RSS sampled every {self.interval} s"
        out: dict[str, Any] = {
            "method": method,
            "driver_peak_mib": driver_peak / MIB,
            "driver_rise_mib": (driver_peak - self.driver_before["rss"]) / MIB,
        }
        if peaks:
            out.update(
                worker_peak_mib=max(peaks.values()) / MIB,
                worker_rise_mib=max(rises) / MIB if rises else None,
                workers_peak_sum_mib=sum(peaks.values()) / MIB,
                workers_measured=len(peaks),
            )
        return out


def merge_memory(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """The larger of two :meth:`PeakMemory.result` records, field by field."""
    if not a:
        return dict(b)
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, int | float) and isinstance(out.get(k), int | float):
            out[k] = max(out[k], v)
        elif out.get(k) is None:
            out[k] = v
    return out


def memory_cells(memory: dict[str, Any] | None, on: str) -> tuple[str, str]:
    """(peak MiB, rise MiB) of the process that fitted: a worker (``on="dask"``) or the driver."""
    if not memory:
        return "—", "—"
    if on == "numpy":
        return f"{memory['driver_peak_mib']:,.0f} (driver)", f"{memory['driver_rise_mib']:,.0f}"
    peak, rise = memory.get("worker_peak_mib"), memory.get("worker_rise_mib")
    return ("—" if peak is None else f"{peak:,.0f}"), ("—" if rise is None else f"{rise:,.0f}")


MEMORY_LINE = (
    "- memory: `peak MiB` is the peak resident memory (RSS) of the process that fits, "
    "the largest over the workers for cluster cases (it includes the persisted data the "
    "worker holds) and the driver for single-process cases; `rise MiB` is that peak minus "
    "the RSS just before the fit (the largest over workers). Measured the same way for "
    "every library, from the kernel's high-water mark VmHWM, reset before each fit; the "
    "largest over the repeats is shown."
)


# ------------------------------------------------------------------------- timing


@dataclass
class FitTimes:
    """What :func:`time_fits` measured; filled in place, so it survives a failing fit."""

    seconds: list[float] = field(default_factory=list)
    #: the fit alone, without ``finish``; only for fits where ``finish`` returned something
    unfinished_seconds: list[float] = field(default_factory=list)
    #: what ``finish`` returned last (when it returned something)
    finished: Any = None
    #: tasks above the baseline still held before a fit (the last repeat that had any)
    tasks_left: int | None = None
    returned_none: bool = False
    warnings: list[str] = field(default_factory=list)
    #: the largest :meth:`PeakMemory.result` over the repeats (None with ``memory=False``)
    memory: dict[str, Any] | None = None
    #: per fit of a daskfuse model: (its partitions' task seconds, their fit seconds),
    #: summed over its ``partition_report_`` after the timed fit
    partition_seconds: list[tuple[float, float]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_fits(
    template: Any,
    fit_args: tuple[Any, ...],
    repeats: int,
    client: Any,
    baseline: int | None,
    *,
    fit_kwargs: dict[str, Any] | None = None,
    finish: Callable[[Any], Any] | None = None,
    times: FitTimes | None = None,
    memory: bool = True,
) -> tuple[Any, FitTimes]:
    """Fit ``repeats`` fresh clones of ``template``; return (the last model, the times).

    Before each fit (untimed) wait until the scheduler is back to ``baseline`` tasks.
    Only ``fit(*fit_args, **fit_kwargs)`` is timed, plus ``finish(model)`` when given
    (e.g. computing lazily fitted attributes; when it returns something truthy, the
    time of the fit alone goes to ``unfinished_seconds``). The warnings of every
    completed fit are collected. A model whose ``fit`` returned None (dask-ml's
    ``BlockwiseVotingClassifier``) is kept by our own reference. Pass ``times`` to keep
    what was measured when a fit raises. With ``memory`` the peak memory of the
    workers and of the driver during each fit is measured (:class:`PeakMemory`,
    outside the timed region) and the largest kept in ``times.memory``.
    """
    from sklearn.base import clone

    times = FitTimes() if times is None else times
    model = None
    for _ in range(repeats):
        model = returned = None  # drop the previous fit before the barrier
        left = settle(client, baseline)
        if baseline is not None and left > baseline:
            times.tasks_left = left - baseline
        est = clone(template)
        finished = None
        peak = PeakMemory(client if memory else None)
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            with peak if memory else nullcontext():
                t0 = time.perf_counter()
                returned = est.fit(*fit_args, **(fit_kwargs or {}))
                t1 = time.perf_counter()
                if finish is not None:
                    finished = finish(est)
                t2 = time.perf_counter() if finish is not None else t1
        if memory:
            times.memory = merge_memory(times.memory, peak.result())
        times.warnings += [f"{w.category.__name__}: {w.message}"[:200] for w in wlist]
        times.seconds.append(t2 - t0)
        if finished:
            times.unfinished_seconds.append(t1 - t0)
            times.finished = finished
        times.returned_none = times.returned_none or returned is None
        model = est if returned is None else returned
        report = getattr(model, "partition_report_", None)
        if report is not None and "task_seconds" in report:
            times.partition_seconds.append(
                (float(report["task_seconds"].sum()), float(report["fit_seconds"].sum()))
            )
    return model, times


def time_call(
    fn: Callable[[], Any],
    repeats: int,
    client: Any | None,
    baseline: int | None = None,
    *,
    memory: bool = True,
) -> tuple[Any, FitTimes]:
    """Time ``fn()`` ``repeats`` times (with its peak memory); return (last result, times).

    Like :func:`time_fits` for work that is not an estimator's ``fit`` (a reference
    computation such as the Gram matrix). With ``client`` and ``baseline``, wait
    (untimed) before each call until the scheduler is back to ``baseline`` tasks;
    with ``client=None`` only the driver's memory is measured.
    """
    times = FitTimes()
    out = None
    for _ in range(repeats):
        out = None
        if client is not None and baseline is not None:
            settle(client, baseline)
        gc.collect()
        peak = PeakMemory(client if memory else None)
        with peak if memory else nullcontext():
            t0 = time.perf_counter()
            out = fn()
            times.seconds.append(time.perf_counter() - t0)
        if memory:
            times.memory = merge_memory(times.memory, peak.result())
    return out, times


def slots(client: Any) -> int:
    """Worker threads in the cluster (tasks that can run at once)."""
    return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())


def daskfuse_breakdown(model: Any, wall: float, n_slots: int) -> dict[str, Any]:
    """Where a daskfuse fit's wall time went, from its ``partition_report_``.

    ``partition_task_seconds_sum`` is the time spent in the partition tasks (rows
    gathered, checked, fitted and summarised), ``partition_fit_seconds_sum`` the
    estimators' ``fit`` alone; ``partition_tasks_share`` is the first over
    ``n_slots * wall``: how much of the cluster's time the partition work filled (the
    rest is the client side, scheduling, the class pass, combining and idle slots).
    """
    report = model.partition_report_
    task = float(report["task_seconds"].sum())
    fit = float(report["fit_seconds"].sum())
    return {
        "partition_fit_seconds_sum": fit,
        "partition_task_seconds_sum": task,
        "partition_tasks_share": task / (n_slots * wall) if wall > 0 else None,
        "slots": n_slots,
    }


def breakdown_note(r: dict[str, Any]) -> str:
    """The markdown note for a daskfuse row with :func:`daskfuse_breakdown` fields."""
    if "partition_task_seconds_sum" not in r:
        return ""
    return (
        f"partition tasks {r['partition_task_seconds_sum']:.2f} s in all (fit() "
        f"{r['partition_fit_seconds_sum']:.2f} s) on {r['slots']} slots = "
        f"{100 * r['partition_tasks_share']:.0f}% of slots x wall"
    )


def new_result(
    case: Any,
    ds: dict[str, Any],
    head: dict[str, Any] | None = None,
    tail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The first fields of a case's result, ``head`` after its key, ``tail`` before its status.

    ``case`` has ``key``, ``label``, ``library``, ``on`` ("dask" or "numpy") and ``dataset``;
    ``ds`` (its data set) ``rows`` and ``partitions``.
    """
    return {
        "key": case.key,
        **(head or {}),
        "label": case.label,
        "library": case.library,
        "fit_on": case.on,
        "dataset": case.dataset,
        "rows": ds["rows"],
        "partitions": ds["partitions"] if case.on == "dask" else 1,
        **(tail or {}),
        "status": "ok",
    }


def error_fields(exc: BaseException) -> dict[str, str]:
    """The result fields of a case that raised (call it in the ``except`` block)."""
    return {
        "status": "error",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc(limit=8),
    }


# ------------------------------------------------------------------------- output


def version(module: str) -> str | None:
    """``module.__version__`` ("unknown" without one), None where it does not import."""
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # a missing package is reported as None
        return None


def loadavg() -> list[float] | None:
    """The 1/5/15-minute load averages, None where the platform has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _threadpools() -> list[tuple[str, int]]:
    """(BLAS/OpenMP API, threads) of this process (run in each worker)."""
    from threadpoolctl import threadpool_info

    return [(p.get("internal_api"), p.get("num_threads")) for p in threadpool_info()]


def machine_info(client: Any) -> dict[str, Any]:
    """CPU, memory, load, BLAS threads of the driver and of the workers, package versions."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_at_start": loadavg(),
        "versions": {name: version(mod) for name, mod in VERSION_MODULES},
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
    try:
        info["worker_threadpools"] = sorted({str(v) for v in client.run(_threadpools).values()})
    except Exception:
        info["worker_threadpools"] = None
    workers = client.scheduler_info().get("workers", {})
    info["workers"] = len(workers)
    info["threads_per_worker"] = sorted({w.get("nthreads") for w in workers.values()})
    return info


def make_payload(
    benchmark: str,
    t_start: float,
    parameters: dict[str, Any],
    machine: dict[str, Any],
    results: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """The JSON document of a run; ``extra`` goes between parameters and machine.

    Also records the load average at the end in ``machine`` (where there is one).
    """
    if hasattr(os, "getloadavg"):
        machine["loadavg_at_end"] = loadavg()
    return {
        "benchmark": benchmark,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t_start,
        "note": DATA_NOTE,
        "ratio_definition": RATIO_DEFINITION,
        "parameters": parameters,
        **extra,
        "machine": machine,
        "results": results,
    }


def write_outputs(
    out: Path, payload: dict[str, Any], report: str, json_default: Any = None
) -> None:
    """Write the JSON to ``out`` and the markdown ``report`` next to it; print the report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=json_default) + "\n")
    md_path = out.with_suffix(".md")
    md_path.write_text(report)
    print()
    print(report)
    print(f"wrote {out} and {md_path}")


def write_run(
    out: Path,
    benchmark: str,
    t_start: float,
    parameters: dict[str, Any],
    machine: dict[str, Any],
    results: list[dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    *,
    json_default: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write a run: its JSON document (:func:`make_payload`) and ``report(payload)``.

    Parameters
    ----------
    out : Path
        The JSON file; the markdown goes next to it (:func:`write_outputs`).
    benchmark, t_start, parameters, machine, results, **extra
        As for :func:`make_payload`.
    report : callable
        The script's markdown report of the JSON document.
    json_default : callable, optional
        ``json.dumps``'s ``default`` (``str`` for values JSON has no type for).

    Returns
    -------
    dict
        The JSON document written.
    """
    payload = make_payload(benchmark, t_start, parameters, machine, results, **extra)
    write_outputs(out, payload, report(payload), json_default=json_default)
    return payload


def result_path(name: str, quick: bool = False, results: Path = RESULTS_DIR) -> Path:
    """A script's JSON file: ``results/NAME.json``, ``NAME_quick.json`` for a quick run.

    >>> result_path("exact").relative_to(RESULTS_DIR).as_posix()
    'exact.json'
    >>> result_path("exact", quick=True, results=Path("out")).as_posix()
    'out/exact_quick.json'
    """
    return results / f"{name}{'_quick' if quick else ''}.json"


def fmt(x: float | None, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, a dash for None."""
    return "—" if x is None else f"{x:.{digits}f}"


def loads(values: Iterable[float] | None) -> str:
    """Load averages as ``a / b / c``, a dash for None."""
    return "—" if values is None else " / ".join(f"{v:.2f}" for v in values)


def fmt_times(seconds: Iterable[float]) -> str:
    """Every fit time, comma separated, a dash for none."""
    return ", ".join(f"{t:.2f}" for t in seconds) or "—"


def md_cell(text: str, limit: int) -> str:
    """``text`` as one markdown table cell: pipes escaped, one line, at most ``limit`` chars."""
    return text.replace("|", "\\|").replace("\n", " ")[:limit]


def md_row(cells: Iterable[str]) -> str:
    """One markdown table row: ``| a | b |``."""
    return "| " + " | ".join(cells) + " |"


#: the first columns of a results table, filled by :func:`case_cells`
CASE_COLUMNS = ("case", "library", "fit on", "rows", "partitions", "fit s (median)", "fit s (all)")


def case_cells(r: dict[str, Any], partitions: Any = None) -> list[str]:
    """The first cells of a case's row (:data:`CASE_COLUMNS`) from its result ``r``.

    ``partitions`` replaces ``r["partitions"]`` when given.
    """
    return [
        r["label"],
        r["library"],
        "driver (NumPy)" if r["fit_on"] == "numpy" else "cluster (dask)",
        f"{r['rows']:,}",
        str(r["partitions"] if partitions is None else partitions),
        fmt(r.get("fit_seconds_median")),
        fmt_times(r.get("fit_seconds", [])),
    ]


def md_head(columns: Sequence[str]) -> list[str]:
    """A markdown table's header row and its rule (one ``---|`` per column).

    >>> for line in [*md_head(["case", "fit s"]), md_row(["ridge", "1.00"])]:
    ...     print(line)
    | case | fit s |
    |---|---|
    | ridge | 1.00 |
    """
    return [md_row(columns), "|" + "---|" * len(columns)]


def report_head(payload: dict[str, Any], title: str, **header: Any) -> list[str]:
    """A report's first lines: ``# title`` (and `` (quick)``), then :func:`header_lines`.

    ``header`` goes to :func:`header_lines`; `` (quick)`` marks a ``--quick`` run.
    """
    quick = " (quick)" if payload["parameters"].get("quick") else ""
    return [f"# {title}{quick}", "", *header_lines(payload, **header)]


def header_lines(
    payload: dict[str, Any],
    *,
    data: Sequence[str] = (),
    cluster_suffix: str = "",
    notes: Sequence[str] = (),
    ratio_note: str = "",
) -> list[str]:
    """The bullet lines every report starts with (after its title).

    In order: the run, ``data``, the cluster (``cluster_suffix`` after the repeats),
    the machine, the versions, ``notes``, the data note and the ratio definition
    (``ratio_note`` appended).
    """
    p, m = payload["parameters"], payload["machine"]
    return [
        f"- run: {payload['timestamp']} ({payload['wall_seconds']:.0f} s wall in all)",
        *data,
        f"- cluster: LocalCluster(n_workers={p['workers']}, threads_per_worker={p['threads']}, "
        f"processes=True); median of {p['repeats']} fit(s) per case{cluster_suffix}",
        f"- machine: {m['cpu_count']} CPUs, {m['memory_gib']} GiB, {m['platform']}, "
        f"load average (1/5/15 min) at start {loads(m.get('loadavg_at_start'))}, "
        f"at end {loads(m.get('loadavg_at_end'))} (other load on the machine skews timings)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        *notes,
        f"- {DATA_NOTE}",
        RATIO_LINE + ratio_note,
    ]


# ------------------------------------------------------------------------ targets

#: the targets of issue 5, by number (``benchmarks/run.py`` lists every one of them)
ISSUE_TARGETS = {
    "1": "Linear classification (>= 2,000,000 x 50)",
    "2": "Exact least squares (>= 5,000,000 x 100)",
    "3": "KMeans (1,000,000 x 20, k = 16)",
    "4": "SVC (RBF), 40,000 to 200,000 rows",
    "5": "Overhead (1,000 small partitions, split_every=8)",
    "6": "Growth (rows x1, x4, x16) and out-of-core",
    "7": "Strong scaling 1 -> 16 workers",
}

_OPS = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def target(
    issue_target: str,
    tid: str,
    what: str,
    measured: float | None,
    op: str,
    threshold: float,
    unit: str = "",
    *,
    conditions: Sequence[tuple[str, bool | None]] = (),
    detail: str = "",
    digits: int = 2,
) -> dict[str, Any]:
    """One row of the target table that every script puts under ``"targets"`` in its JSON.

    ``measured`` is compared with ``threshold`` by ``op`` (``>=``, ``>``, ``<=``, ``<``);
    every ``(description, ok)`` in ``conditions`` must hold too (e.g. the accuracy
    being within 0.5 point). ``met`` is None (not measured) when ``measured`` or a
    condition is None. ``benchmarks/run.py`` collects these rows into
    ``results/summary.md``; a script added later (``bench_svm.py``) reports the same way.
    """
    conds = [{"what": c, "ok": ok} for c, ok in conditions]
    if measured is None or any(c["ok"] is None for c in conds):
        met = None
    else:
        met = bool(_OPS[op](measured, threshold)) and all(c["ok"] for c in conds)
    return {
        "target": issue_target,
        "id": tid,
        "what": what,
        "measured": measured,
        "measured_text": "—" if measured is None else f"{measured:,.{digits}f}{unit}",
        "goal": f"{op} {threshold:,g}{unit}",
        "op": op,
        "threshold": threshold,
        "unit": unit,
        "conditions": conds,
        "met": met,
        "detail": detail,
    }


def met_text(met: bool | None) -> str:
    """``met`` / ``missed`` / ``not measured``."""
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def target_detail(t: dict[str, Any]) -> str:
    """A target row's conditions (``what: yes``, ``no`` or ``—``) and its detail, in one text."""
    conds = "; ".join(
        f"{c['what']}: {'yes' if c['ok'] else ('—' if c['ok'] is None else 'no')}"
        for c in t.get("conditions", [])
    )
    return "; ".join(x for x in (conds, t.get("detail", "")) if x)


def targets_table(targets: Sequence[dict[str, Any]]) -> str:
    """The ``"targets"`` rows of one script as a markdown table."""
    lines = md_head(["target", "what", "measured", "goal", "result", "detail"])
    for t in targets:
        lines.append(
            f"| {t['id']} | {md_cell(t['what'], 200)} | {t['measured_text']} | {t['goal']} "
            f"| {met_text(t['met'])} | {md_cell(target_detail(t), 300)} |"
        )
    return "\n".join(lines)


def targets_section(targets: Sequence[dict[str, Any]], number: str | int) -> list[str]:
    """The lines that end a report: the heading of issue 5's target ``number`` and its table."""
    return ["", f"## Targets (issue 5, target {number})", "", targets_table(targets), ""]


# ------------------------------------------------------------------------ options


def make_parser(doc: str, *, show_defaults: bool = True) -> argparse.ArgumentParser:
    """A script's parser, described by the first paragraph of its docstring ``doc``.

    With ``show_defaults`` ``--help`` shows every option's default
    (``argparse.ArgumentDefaultsHelpFormatter``).
    """
    if not show_defaults:
        return argparse.ArgumentParser(description=doc.split("\n\n")[0])
    return argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def add_run_args(parser: argparse.ArgumentParser, *, cluster: bool = True) -> None:
    """The options every script has: cluster size (unless ``cluster`` is False) and data seed."""
    if cluster:
        parser.add_argument("--workers", type=int, default=2, help="LocalCluster n_workers")
        parser.add_argument(
            "--threads", type=int, default=1, help="LocalCluster threads_per_worker"
        )
    parser.add_argument("--seed", type=int, default=0, help="data seed")


def complete_args(
    args: argparse.Namespace,
    name: str,
    defaults: dict[str, Any] | None = None,
    quick_defaults: dict[str, Any] | None = None,
) -> None:
    """Fill in the options left unset (None) on the command line, in place.

    Each option named in ``quick_defaults`` (with ``--quick``) or ``defaults`` gets its
    value there, and ``--out`` the script's results file :func:`result_path` ``(name)``.

    >>> parser = make_parser("Demo.")
    >>> for flag in ("--quick", "--rows", "--repeats", "--out"):
    ...     _ = parser.add_argument(flag, **({"action": "store_true"} if flag == "--quick" else {}))
    >>> args = parser.parse_args(["--quick", "--rows", "7"])
    >>> complete_args(args, "demo", {"rows": 100, "repeats": 3}, {"rows": 10, "repeats": 1})
    >>> args.rows, args.repeats, args.out.name
    ('7', 1, 'demo_quick.json')
    """
    for key, value in ((quick_defaults if args.quick else defaults) or {}).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = result_path(name, args.quick)


def check_positive(parser: argparse.ArgumentParser, values: Iterable[int], message: str) -> None:
    """Exit with the usage and ``message`` (``parser.error``) unless every value is >= 1.

    >>> parser = make_parser("Demo.")
    >>> check_positive(parser, (1, 2), "sizes must be positive")
    >>> check_positive(parser, (1, 0), "sizes must be positive")
    Traceback (most recent call last):
    SystemExit: 2
    """
    if min(values) < 1:
        parser.error(message)
