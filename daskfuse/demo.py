"""What ``daskfuse demo`` runs: a fused fit on a LocalCluster against scikit-learn.

:func:`run_demo` starts a :class:`distributed.LocalCluster`, makes a synthetic data
set (:func:`make_classification_data`) on its workers, fits a
:class:`~daskfuse.FusedClassifier` and the same scikit-learn estimator on one
process, and prints a table of fit seconds and held-out accuracy. The command line
(:mod:`daskfuse.cli`) parses the flags and calls it.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import time
import warnings

import numpy as np

from ._console import (
    UserError,
    _nbytes,
    _plural,
    _quiet_after_interrupt,
    _report_table,
    _start_local_cluster,
)

__all__ = ["make_classification_data", "run_demo"]

#: estimators the demo can fit, by ``--estimator`` name
DEMO_ESTIMATORS = ("sgd", "logistic")

#: norm of the true coefficient vector of the demo data; the logistic link makes the
#: labels noisy, so the best possible accuracy is about 0.91, not 1
SIGNAL = 6.0

#: the single-process fit is skipped unless this many copies of X fit in free memory
MEMORY_HEADROOM = 3.0

#: the demo refuses partitions smaller than this (a partition with one class only
#: cannot be fitted by a classifier)
MIN_ROWS_PER_PARTITION = 50


# --------------------------------------------------------------------------- data
def _row_chunks(n_rows, n_parts):
    """``n_parts`` row block sizes that differ by at most one and sum to ``n_rows``."""
    base, extra = divmod(n_rows, n_parts)
    return tuple(base + (i < extra) for i in range(n_parts))


def make_classification_data(rows, features, partitions, seed=0, test_rows=None):
    """A noisy, linearly separable binary classification set as dask arrays.

    The features are standard normal; the label of a row is 1 with probability
    ``sigmoid(X @ coef + intercept)`` for a fixed coefficient vector of norm
    :data:`SIGNAL`, so that no model is right on every row (the best accuracy is
    about 0.91).

    Parameters
    ----------
    rows : int
        Training rows; the arrays are chunked into ``partitions`` row blocks.
    features : int
        Number of features.
    partitions : int
        Number of row blocks of the training arrays (at most ``rows``).
    seed : int, default=0
        Seeds the coefficients and every draw: equal seeds give equal data.
    test_rows : int or None, default=None
        Rows of the held-out set; None takes a quarter of ``rows`` (at least 1,000
        and at most 500,000).

    Returns
    -------
    X_train, y_train, X_test, y_test : dask.array.Array
        Lazy arrays; ``y`` holds the labels 0 and 1.
    """
    import dask.array as da

    if partitions > rows:
        raise ValueError(f"partitions ({partitions}) must not exceed rows ({rows})")
    if test_rows is None:
        test_rows = min(max(rows // 4, 1_000), 500_000)
    coef_rng = np.random.default_rng(seed)
    coef = coef_rng.normal(size=features)
    coef *= SIGNAL / np.linalg.norm(coef)
    intercept = 0.25
    rng = da.random.default_rng(seed)

    def draw(n, n_blocks):
        chunks = _row_chunks(n, n_blocks)
        X = rng.standard_normal((n, features), chunks=(chunks, features))
        logits = X @ coef + intercept
        u = rng.random(n, chunks=(chunks,))
        y = (u < 1.0 / (1.0 + da.exp(-logits))).astype(np.int64)
        return X, y

    X_train, y_train = draw(rows, partitions)
    X_test, y_test = draw(test_rows, max(1, min(partitions, test_rows)))
    return X_train, y_train, X_test, y_test


# --------------------------------------------------------------------------- steps
def _check_demo_args(rows, partitions, estimator):
    """Raise :class:`~daskfuse.cli.UserError` where the demo's parameters conflict."""
    if estimator not in DEMO_ESTIMATORS:
        raise UserError(f"--estimator must be one of {', '.join(DEMO_ESTIMATORS)}")
    if rows < partitions:
        raise UserError(
            f"--rows ({rows}) must be at least --partitions ({partitions}): "
            "every partition needs rows"
        )
    if rows < MIN_ROWS_PER_PARTITION * partitions:
        raise UserError(
            f"--rows ({rows}) is too small for --partitions ({partitions}): the demo "
            f"needs at least {MIN_ROWS_PER_PARTITION} rows per partition "
            f"({MIN_ROWS_PER_PARTITION * partitions} rows), so that every partition "
            "holds both classes"
        )


def _make_estimator(name, seed):
    if name == "sgd":
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier(random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression()


def _dashboard_problem():
    """Why the scheduler has no dashboard, or None when it has one.

    The scheduler makes the same check: the dashboard needs
    ``distributed.dashboard.scheduler``, which needs a suitable bokeh.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import distributed.dashboard.scheduler  # noqa: F401
    except ImportError as exc:
        return str(exc) or "bokeh is not installed"
    return None


def _print_dashboard(client, console, keep=False):
    """Print the dashboard link (or why there is none) and return it (or None).

    Next to the link: how long it stays open (until the demo ends, or with ``keep``
    until Ctrl-C).
    """
    problem = _dashboard_problem()
    if problem is None:
        dashboard = client.dashboard_link
        when = (
            "open until you press Ctrl-C after the tables"
            if keep
            else "open while the demo runs; daskfuse demo --keep keeps it open until Ctrl-C"
        )
        console.print(f"Dashboard: {dashboard} ({when})", markup=False, soft_wrap=True)
        return dashboard
    console.print(f"Dashboard: not available ({problem})", markup=False)
    console.print('  to get it: pip install "daskfuse[dashboard]"', markup=False)
    return None


def _persist_data(client, rows, features, partitions, seed, console):
    """Make the demo data on the workers and keep it there: ``[X, y, X_test, y_test]``."""
    from distributed import wait

    data = make_classification_data(rows, features, partitions, seed)
    start = time.perf_counter()
    data = client.persist(list(data))
    wait(data)
    X, X_test = data[0], data[2]
    console.print(
        f"Data: {rows:,} x {features} ({_nbytes(X.nbytes)}) in "
        f"{_plural(partitions, 'row partition')} of ~{rows // partitions:,} rows,\n"
        f"      {len(X_test):,} held-out rows; made and persisted on the workers "
        f"in {time.perf_counter() - start:.1f} s",
        markup=False,
    )
    return data


def _fit_fused(template, data, partitions, seed, progress, console):
    """The fitted :class:`~daskfuse.FusedClassifier` and its ``{"seconds", "accuracy"}``."""
    from . import FusedClassifier

    X, y, X_test, y_test = data
    console.print(
        f"Fitting FusedClassifier({type(template).__name__}) on "
        f"{_plural(partitions, 'partition')} ..."
    )
    if progress and not console.is_terminal:
        # distributed's text bar redraws one line with carriage returns: in a
        # log file or a CI log that is one long line of bars
        progress = False
        console.print("  (no progress bar: stdout is not a terminal)")
    model = FusedClassifier(template, random_state=seed, verbose=int(bool(progress)))
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    accuracy = model.score(X_test, y_test)
    console.print(f"  done in {seconds:.2f} s")
    return model, {"seconds": seconds, "accuracy": accuracy}


def _available_memory():
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, OSError):
        return None


def _fit_single(client, data, estimator, seed, console):
    """``{"seconds", "accuracy"}`` of ``estimator`` fitted on one process, on the
    data gathered to numpy; None (said) when that would not fit in free memory."""
    X, X_test = data[0], data[2]
    need = MEMORY_HEADROOM * (X.nbytes + X_test.nbytes)
    available = _available_memory()
    if available is not None and need > available:
        console.print(
            f"Skipping the single-process fit: it needs about {_nbytes(need)} of "
            f"memory and {_nbytes(available)} is free",
            markup=False,
        )
        return None
    baseline = _make_estimator(estimator, seed)
    console.print(f"Fitting {type(baseline).__name__} on 1 process (data gathered to numpy) ...")
    X_np, y_np, X_test_np, y_test_np = client.gather(client.compute(list(data)))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        baseline.fit(X_np, y_np)
    seconds = time.perf_counter() - start
    console.print(f"  done in {seconds:.2f} s")
    return {"seconds": seconds, "accuracy": float(baseline.score(X_test_np, y_test_np))}


def _machine_text():
    """The cores and load average of this machine, as the demo prints them."""
    cores = os.cpu_count() or 1
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except (AttributeError, OSError):  # no load average (Windows)
        load = "unknown"
    return f"{_plural(cores, 'core')}, load average {load}"


def _speedup(single, fused):
    """scikit-learn's fit seconds over daskfuse's."""
    return single["seconds"] / fused["seconds"] if fused["seconds"] > 0 else math.inf


def _print_ratio_note(single, fused, console):
    """Print the speed-up with this machine's cores and load, and what it means."""
    if single is None:
        return
    console.print(
        f"Speed-up {_speedup(single, fused):.2f}x on this machine: {_machine_text()}.",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        "It is scikit-learn's fit seconds over daskfuse's on the same data. Below 1x the "
        "cluster's overhead (worker processes, scheduling, fusing) outweighs its parallel "
        "fits, as on a small or busy machine; expect more with more cores (more workers) "
        "and with data larger than one process's memory, which one scikit-learn process "
        "cannot fit at all.",
        markup=False,
    )


def _keep_open(dashboard, console):
    """Wait until Ctrl-C, the cluster and its dashboard open; print the link again."""
    if dashboard is None:
        console.print("--keep: no dashboard to keep open; closing the cluster", markup=False)
        return
    try:  # from before the line is printed: Ctrl-C may follow it at once
        console.print(
            f"Dashboard: {dashboard} (kept open; press Ctrl-C to close the cluster and exit)",
            markup=False,
            soft_wrap=True,
        )
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("Closing the cluster", markup=False)


def _results_table(single, fused, model, est_name, workers, threads):
    from rich.table import Table

    table = Table(
        title=(f"{est_name}: single process vs fused ({workers} worker(s) x {threads} thread(s))"),
        title_justify="left",
    )
    table.add_column("model")
    table.add_column("fit\nseconds", justify="right")
    table.add_column("held-out\naccuracy", justify="right")
    table.add_column("speed-up\nvs sklearn", justify="right")
    fused_label = (
        f"daskfuse ({_plural(model.n_partitions_, 'partition')}, fusion={model.fusion_.name})"
    )
    if single is None:
        table.add_row("scikit-learn (1 process)", "skipped", "-", "-")
        table.add_row(fused_label, f"{fused['seconds']:.2f}", f"{fused['accuracy']:.4f}", "-")
    else:
        table.add_row(
            "scikit-learn (1 process)",
            f"{single['seconds']:.2f}",
            f"{single['accuracy']:.4f}",
            "1.00x",
        )
        ratio = _speedup(single, fused)
        table.add_row(
            fused_label,
            f"{fused['seconds']:.2f}",
            f"{fused['accuracy']:.4f}",
            f"{ratio:.2f}x",
        )
    return table


# --------------------------------------------------------------------------- demo
def run_demo(
    rows=2_000_000,
    features=20,
    partitions=8,
    workers=2,
    threads_per_worker=1,
    estimator="sgd",
    seed=0,
    progress=True,
    keep=False,
    console=None,
):
    """Run the demo: fused fit on a LocalCluster against single-process scikit-learn.

    Parameters
    ----------
    rows, features : int
        Shape of the training data.
    partitions : int
        Row blocks of the training data, hence partitions of the fused fit.
    workers, threads_per_worker : int
        Shape of the :class:`distributed.LocalCluster` (worker processes).
    estimator : {"sgd", "logistic"}, default="sgd"
        ``SGDClassifier`` or ``LogisticRegression``.
    seed : int, default=0
        Seeds the data and the estimators.
    progress : bool, default=True
        Show a progress bar while the fused model is fitted.
    keep : bool, default=False
        After the tables, keep the cluster (and its dashboard) open until Ctrl-C,
        printing the dashboard link again.
    console : rich.console.Console or None
        Where to print; None makes one on stdout.

    Returns
    -------
    results : dict
        ``"fused"`` and ``"sklearn"`` (``{"seconds", "accuracy"}``, or None for
        ``"sklearn"`` when the data did not fit in memory), ``"model"`` (the fitted
        :class:`~daskfuse.FusedClassifier`) and ``"dashboard"`` (the link or None).

    Raises
    ------
    UserError
        The parameters contradict each other (fewer than
        :data:`MIN_ROWS_PER_PARTITION` rows per partition).
    """
    if console is None:
        from rich.console import Console

        console = Console(highlight=False)
    _check_demo_args(rows, partitions, estimator)
    from distributed import Client

    template = _make_estimator(estimator, seed)
    cluster = _start_local_cluster(
        workers, threads_per_worker, console, dashboard_address=":0", silence_logs=logging.ERROR
    )
    with cluster, Client(cluster) as client, _quiet_after_interrupt():
        dashboard = _print_dashboard(client, console, keep)
        data = _persist_data(client, rows, features, partitions, seed, console)
        # import scikit-learn and daskfuse on the workers now, so that the timing
        # below is of fitting and not of the workers' first imports
        for module in ("daskfuse._graph", type(template).__module__):
            client.run(importlib.import_module, module)
        model, fused = _fit_fused(template, data, partitions, seed, progress, console)
        single = _fit_single(client, data, estimator, seed, console)

        est_name = type(template).__name__
        console.print()
        console.print(_results_table(single, fused, model, est_name, workers, threads_per_worker))
        _print_ratio_note(single, fused, console)
        console.print()
        console.print(_report_table(model.partition_report_))
        if keep:
            _keep_open(dashboard, console)
    return {"fused": fused, "sklearn": single, "model": model, "dashboard": dashboard}
