"""The ``daskfuse`` command line (also ``python -m daskfuse``).

Subcommands:

``demo``
    Start a local dask cluster, fit a fused model on a synthetic data set larger
    than one partition and compare it with single-process scikit-learn.

Every subcommand is a function ``(args, console) -> int`` registered by
:func:`build_parser`; :func:`main` parses and dispatches.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import signal
import sys
import threading
import time
import warnings

import numpy as np

__all__ = ["build_parser", "main", "make_classification_data", "run_demo"]

PROG = "daskfuse"

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

#: the partition report table shows at most this many partitions
REPORT_ROWS = 10


class UserError(Exception):
    """A mistake in the command line that argparse cannot catch: one line, exit 2."""


# --------------------------------------------------------------------------- parser
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _version():
    from . import __version__

    return __version__


def build_parser():
    """The argument parser of the ``daskfuse`` command, one subparser per subcommand.

    Returns
    -------
    parser : argparse.ArgumentParser
        Parsing sets ``args.func``, the function running the chosen subcommand.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Fit one scikit-learn model per data partition on dask and fuse them into one."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="fit on a local dask cluster and compare with single-process scikit-learn",
        description=(
            "Start a LocalCluster, print the dashboard link, build a synthetic "
            "classification data set split into row partitions, fit a fused model "
            "(with a progress bar) and the same scikit-learn estimator on one process, "
            "and print a table of fit seconds and held-out accuracy."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--rows", type=_positive_int, default=2_000_000,
                      help="training rows")
    demo.add_argument("--features", type=_positive_int, default=20, help="features")
    demo.add_argument("--partitions", type=_positive_int, default=8,
                      help="row partitions (row blocks of the dask array)")
    demo.add_argument("--workers", type=_positive_int, default=2,
                      help="worker processes of the LocalCluster")
    demo.add_argument("--threads-per-worker", type=_positive_int, default=1,
                      help="threads per worker")
    demo.add_argument("--estimator", choices=DEMO_ESTIMATORS, default="sgd",
                      help="sgd: SGDClassifier, logistic: LogisticRegression")
    demo.add_argument("--seed", type=int, default=0, help="random seed of data and models")
    demo.add_argument("--no-progress", dest="progress", action="store_false",
                      help="do not show the progress bar while fitting")
    demo.set_defaults(func=_demo_command)
    return parser


def main(argv=None):
    """Run the ``daskfuse`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        The exit status: 0 on success, 1 when the data cannot be fitted as asked,
        2 for a usage error, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from rich.console import Console

    from .exceptions import FusionError, PartitionError

    console = Console(highlight=False)
    try:
        return args.func(args, console)
    except UserError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FusionError, PartitionError) as exc:
        # the data cannot be fitted as asked: a message, not a traceback
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------- demo
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


@contextlib.contextmanager
def _workers_ignore_sigint():
    """Start worker processes that ignore Ctrl-C (SIGINT).

    A Ctrl-C in a terminal goes to every process of the foreground group, worker
    processes included, and each would print a ``KeyboardInterrupt`` traceback. A
    process inherits an ignored SIGINT, so the workers started in this block leave
    the interrupt to this process, which closes the cluster on its way out. Ctrl-C is
    ignored for the few seconds that the workers take to start.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _quiet_after_interrupt():
    """On Ctrl-C, silence asyncio's report of the client's cancelled gather.

    ``distributed`` leaves a cancelled task behind when a ``compute`` is interrupted,
    and asyncio logs "Task exception was never retrieved" with a traceback for it;
    the interrupt itself is reported by :func:`main`.
    """
    try:
        yield
    except KeyboardInterrupt:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        raise


def _nbytes(n):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _available_memory():
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, OSError):
        return None


def run_demo(
    rows=2_000_000,
    features=20,
    partitions=8,
    workers=2,
    threads_per_worker=1,
    estimator="sgd",
    seed=0,
    progress=True,
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

    from distributed import Client, LocalCluster, wait

    from . import FusedClassifier

    template = _make_estimator(estimator, seed)
    est_name = type(template).__name__
    console.print(
        f"Starting a LocalCluster: {workers} worker process(es) x "
        f"{threads_per_worker} thread(s)"
    )
    with _workers_ignore_sigint():
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster) as client, _quiet_after_interrupt():
        problem = _dashboard_problem()
        if problem is None:
            dashboard = client.dashboard_link
            console.print(f"Dashboard: {dashboard}", markup=False)
        else:
            dashboard = None
            console.print(f"Dashboard: not available ({problem})", markup=False)
            console.print('  to get it: pip install "daskfuse[dashboard]"', markup=False)

        X, y, X_test, y_test = make_classification_data(rows, features, partitions, seed)
        start = time.perf_counter()
        X, y, X_test, y_test = client.persist([X, y, X_test, y_test])
        wait([X, y, X_test, y_test])
        console.print(
            f"Data: {rows:,} x {features} ({_nbytes(X.nbytes)}) in {partitions} row "
            f"partitions of ~{rows // partitions:,} rows,\n"
            f"      {len(X_test):,} held-out rows; made and persisted on the workers "
            f"in {time.perf_counter() - start:.1f} s",
            markup=False,
        )
        # import scikit-learn and daskfuse on the workers now, so that the timing
        # below is of fitting and not of the workers' first imports
        for module in ("daskfuse._graph", type(template).__module__):
            client.run(importlib.import_module, module)

        console.print(f"Fitting FusedClassifier({est_name}) on {partitions} partitions ...")
        if progress and not console.is_terminal:
            # distributed's text bar redraws one line with carriage returns: in a
            # log file or a CI log that is one long line of bars
            progress = False
            console.print("  (no progress bar: stdout is not a terminal)")
        model = FusedClassifier(template, random_state=seed, verbose=int(bool(progress)))
        start = time.perf_counter()
        model.fit(X, y)
        fused_seconds = time.perf_counter() - start
        fused_accuracy = model.score(X_test, y_test)
        fused = {"seconds": fused_seconds, "accuracy": fused_accuracy}
        console.print(f"  done in {fused_seconds:.2f} s")

        single = None
        need = MEMORY_HEADROOM * (X.nbytes + X_test.nbytes)
        available = _available_memory()
        if available is not None and need > available:
            console.print(
                f"Skipping the single-process fit: it needs about {_nbytes(need)} of "
                f"memory and {_nbytes(available)} is free",
                markup=False,
            )
        else:
            console.print(f"Fitting {est_name} on 1 process (data gathered to numpy) ...")
            X_np, y_np, X_test_np, y_test_np = client.gather(
                client.compute([X, y, X_test, y_test])
            )
            baseline = _make_estimator(estimator, seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                baseline.fit(X_np, y_np)
            single_seconds = time.perf_counter() - start
            single = {
                "seconds": single_seconds,
                "accuracy": float(baseline.score(X_test_np, y_test_np)),
            }
            del X_np, y_np, X_test_np, y_test_np
            console.print(f"  done in {single_seconds:.2f} s")

    console.print()
    console.print(_results_table(single, fused, model, est_name, workers, threads_per_worker))
    console.print()
    console.print(_report_table(model.partition_report_))
    return {"fused": fused, "sklearn": single, "model": model, "dashboard": dashboard}


def _results_table(single, fused, model, est_name, workers, threads):
    from rich.table import Table

    table = Table(
        title=(
            f"{est_name}: single process vs fused "
            f"({workers} worker(s) x {threads} thread(s))"
        ),
        title_justify="left",
    )
    table.add_column("model")
    table.add_column("fit\nseconds", justify="right")
    table.add_column("held-out\naccuracy", justify="right")
    table.add_column("speed-up\nvs sklearn", justify="right")
    fused_label = f"daskfuse ({model.n_partitions_} partitions, fusion={model.fusion_.name})"
    if single is None:
        table.add_row("scikit-learn (1 process)", "skipped", "-", "-")
        table.add_row(
            fused_label, f"{fused['seconds']:.2f}", f"{fused['accuracy']:.4f}", "-"
        )
    else:
        table.add_row(
            "scikit-learn (1 process)",
            f"{single['seconds']:.2f}",
            f"{single['accuracy']:.4f}",
            "1.00x",
        )
        ratio = single["seconds"] / fused["seconds"] if fused["seconds"] > 0 else math.inf
        table.add_row(
            fused_label,
            f"{fused['seconds']:.2f}",
            f"{fused['accuracy']:.4f}",
            f"{ratio:.2f}x",
        )
    return table


def _report_table(report):
    from rich.table import Table

    n = len(report)
    shown = report.head(REPORT_ROWS)
    table = Table(title=f"Partition report ({n} partitions)", title_justify="left")
    for name, justify in (
        ("part-\nition", "right"),
        ("rows", "right"),
        ("rows per class", "left"),
        ("train\naccuracy", "right"),
        ("fit\nseconds", "right"),
        ("worker", "left"),
    ):
        table.add_column(name, justify=justify)
    for row in shown.itertuples(index=False):
        counts = row.class_counts or {}
        table.add_row(
            str(row.partition),
            f"{row.rows:,}",
            " ".join(f"{k}:{v:,}" for k, v in counts.items()),
            f"{row.train_score:.4f}",
            f"{row.fit_seconds:.2f}",
            str(row.worker).removeprefix("tcp://"),
        )
    if n > REPORT_ROWS:
        table.add_row("...", f"{n - REPORT_ROWS} more", "", "", "", "")
    return table


def _demo_command(args, console):
    run_demo(
        rows=args.rows,
        features=args.features,
        partitions=args.partitions,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        estimator=args.estimator,
        seed=args.seed,
        progress=args.progress,
        console=console,
    )
    return 0
