"""What the command line and the demo share: their errors, the LocalCluster they
start, and how they print (byte counts, the partition report table)."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading

#: the partition report table shows at most this many partitions
REPORT_ROWS = 10


class UserError(Exception):
    """A mistake in the command line that argparse cannot catch: one line, exit 2."""


class DataError(Exception):
    """The data cannot be fitted or predicted as asked: one line, exit 2."""


# --------------------------------------------------------------------------- cluster
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


def _start_local_cluster(workers, threads, console, **kwargs):
    """Say so and start a LocalCluster of ``workers`` processes that ignore Ctrl-C.

    ``kwargs`` go to :class:`distributed.LocalCluster` (dashboard, logging).
    """
    from distributed import LocalCluster

    console.print(f"Starting a LocalCluster: {workers} worker process(es) x {threads} thread(s)")
    with _workers_ignore_sigint():
        return LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, **kwargs)


# --------------------------------------------------------------------------- output
def _nbytes(n):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _cell(value, fmt):
    """``value`` formatted with ``fmt``, or ``-`` where it is missing (None, NaN)."""
    if _missing(value):
        return "-"
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def _plural(n, word):
    """``"1 partition"``, ``"2 partitions"``: ``n`` and ``word``, plural unless one."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def _report_columns(rows, score_label):
    """The report table's columns that mean something for these ``rows``.

    ``(header, justify, cell)`` each: the class counts only where a row has them
    (classifiers), the training score only where a row has one (not for a
    transformer, nor for a strategy that computes none).
    """
    columns = [
        ("part-\nition", "right", lambda row: str(row.get("partition"))),
        ("rows", "right", lambda row: _cell(row.get("rows"), ",")),
    ]
    if any(isinstance(row.get("class_counts"), dict) and row["class_counts"] for row in rows):
        columns.append(("rows per class", "left", _class_counts_cell))
    if any(not _missing(row.get("train_score")) for row in rows):
        columns.append((score_label, "right", lambda row: _cell(row.get("train_score"), ".4f")))
    columns += [
        ("fit\nseconds", "right", lambda row: _cell(row.get("fit_seconds"), ".2f")),
        ("worker", "left", _worker_cell),
    ]
    return columns


def _class_counts_cell(row):
    counts = row.get("class_counts")
    counts = counts if isinstance(counts, dict) else {}
    return " ".join(f"{k}:{v:,}" for k, v in counts.items())


def _worker_cell(row):
    worker = row.get("worker")
    return "-" if worker is None else str(worker).removeprefix("tcp://")


def _report_table(report, limit=REPORT_ROWS, score_label="train\naccuracy"):
    """The rich table of a ``partition_report_``: at most ``limit`` rows (None: all).

    Only the columns that mean something for the report are shown (see
    :func:`_report_columns`), judged over every partition, not only those shown.
    """
    from rich.table import Table

    n = len(report)
    rows = report.to_dict("records")
    columns = _report_columns(rows, score_label)
    table = Table(title=f"Partition report ({_plural(n, 'partition')})", title_justify="left")
    for header, justify, _ in columns:
        table.add_column(header, justify=justify)
    for row in rows if limit is None else rows[:limit]:
        table.add_row(*(cell(row) for _, _, cell in columns))
    if limit is not None and n > limit:
        table.add_row("...", f"{n - limit} more", *([""] * (len(columns) - 2)))
    return table
