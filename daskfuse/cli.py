"""The ``daskfuse`` command line (also ``python -m daskfuse``).

Subcommands:

``demo``
    Start a local dask cluster, fit a fused model on a synthetic data set larger
    than one partition and compare it with single-process scikit-learn
    (:func:`daskfuse.demo.run_demo`, also importable from here).
``fit``
    Read a CSV or parquet data set as a dask DataFrame, fit a fused model of any
    scikit-learn estimator on a dask cluster (a LocalCluster it starts, or a running
    scheduler), and write the model (:func:`daskfuse.persist.save`) and a JSON report.
``predict``
    Load a model (:func:`daskfuse.persist.load`) and write its predictions for a
    CSV or parquet data set to one CSV or parquet file.
``report``
    Print what a saved model is: estimator, fusion, classes and partition table.

Every subcommand is a function ``(args, console) -> int`` registered by
:func:`build_parser`; :func:`main` parses and dispatches.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib
import inspect
import json
import logging
import math
import os
import sys
import time
import warnings

import numpy as np

from ._console import (
    DataError,
    UserError,
    _nbytes,
    _plural,
    _quiet_after_interrupt,
    _report_table,
    _start_local_cluster,
)
from .demo import (
    DEMO_ESTIMATORS,
    make_classification_data,
    run_demo,
)

__all__ = ["build_parser", "main", "make_classification_data", "read_data", "run_demo"]

PROG = "daskfuse"

#: file name endings of the data formats ``fit`` and ``predict`` read and write
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")

#: ``predict`` computes this many partitions of predictions at a time before writing
#: them, so that the predictions are never all in memory
PREDICT_BATCH = 8

#: worker processes of the LocalCluster that ``fit`` starts without --workers
FIT_WORKERS = 2

#: how ``predict`` may apply the model, in the order ``auto`` tries them
PREDICT_METHODS = ("predict", "transform", "predict_proba", "decision_function")


#: the exit status of every error that the command reports in one line (as argparse's
#: usage errors): a bad argument, file, column, estimator, model file or data
ERROR_STATUS = 2

#: the exit statuses, as ``--help`` and the README state them
EXIT_STATUS_HELP = (
    f"exit status: 0 on success; {ERROR_STATUS} on an error, reported in one line on "
    "stderr (a bad argument, file, column, estimator, model file, or data that cannot "
    "be fitted or predicted as asked); 130 when interrupted"
)


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
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo_parser(sub)
    _add_fit_parser(sub)
    _add_predict_parser(sub)
    _add_report_parser(sub)
    return parser


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that states each option's default, but not a flag's (``--no-progress``).

    A flag's default is its stored value (``--no-progress`` stores False in
    ``progress``, whose default is True), which "(default: True)" would present as
    the flag being on by default.
    """

    def _get_help_string(self, action):
        if action.nargs == 0:  # a flag: store_true, store_false, store_const
            return action.help
        return super()._get_help_string(action)


def _add_progress_option(parser):
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not show the progress bar while fitting (it is shown when stdout is a terminal)",
    )


def _add_demo_parser(sub):

    demo = sub.add_parser(
        "demo",
        epilog=EXIT_STATUS_HELP,
        help="fit on a local dask cluster and compare with single-process scikit-learn",
        description=(
            "Start a LocalCluster, print the dashboard link, build a synthetic "
            "classification data set split into row partitions, fit a fused model "
            "(with a progress bar) and the same scikit-learn estimator on one process, "
            "and print a table of fit seconds and held-out accuracy."
        ),
        formatter_class=_DefaultsFormatter,
    )
    demo.add_argument("--rows", type=_positive_int, default=2_000_000, help="training rows")
    demo.add_argument("--features", type=_positive_int, default=20, help="features")
    demo.add_argument(
        "--partitions",
        type=_positive_int,
        default=8,
        help="row partitions (row blocks of the dask array)",
    )
    demo.add_argument(
        "--workers", type=_positive_int, default=2, help="worker processes of the LocalCluster"
    )
    demo.add_argument(
        "--threads-per-worker", type=_positive_int, default=1, help="threads per worker"
    )
    demo.add_argument(
        "--estimator",
        choices=DEMO_ESTIMATORS,
        default="sgd",
        help="sgd: SGDClassifier, logistic: LogisticRegression",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed of data and models")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="after the tables, keep the cluster and its dashboard open until Ctrl-C",
    )
    _add_progress_option(demo)
    demo.set_defaults(func=_demo_command)


def _add_cluster_options(parser, workers_help):
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running dask scheduler (tcp://host:8786) to run on; the "
        "workers must be able to read DATA at the same path",
    )
    # default None, so that argparse sees an explicit --workers next to --scheduler
    where.add_argument(
        "--workers", type=_positive_int, default=None, metavar="N", help=workers_help
    )
    parser.add_argument(
        "--threads-per-worker",
        type=_positive_int,
        default=1,
        metavar="N",
        help="threads per worker of that LocalCluster (default: 1)",
    )


def _add_fit_parser(sub):
    fit = sub.add_parser(
        "fit",
        epilog=EXIT_STATUS_HELP,
        help="fit a fused model on a CSV or parquet data set and save it",
        description=(
            "Read DATA (a CSV or parquet file, a directory of part files, or a glob) as "
            "a dask DataFrame, fit one ESTIMATOR per partition on a dask cluster, fuse "
            "them into one model, and write it with daskfuse.save (skops format) and, "
            "with --report, a JSON report. Without --scheduler a LocalCluster is "
            "started for the fit and closed after it."
        ),
    )
    fit.add_argument(
        "data", metavar="DATA", help="CSV or parquet file, directory of part files, or glob"
    )
    fit.add_argument(
        "--target", metavar="COL", help="the label column (required for classifiers and regressors)"
    )
    _add_estimator_options(fit)
    fit.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="COL",
        help="a column that is not a feature (an id); repeat for several",
    )
    fit.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random_state of the fused estimator: reproducible shuffles and per-partition seeds",
    )
    _add_cluster_options(
        fit,
        f"worker processes of the LocalCluster started for the fit (default: {FIT_WORKERS})",
    )
    fit.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="model file to write (skops format, e.g. model.skops)",
    )
    fit.add_argument(
        "--report",
        metavar="REPORT.json",
        help="write a JSON report: partitions, fusion, fit seconds, score",
    )
    _add_progress_option(fit)
    fit.set_defaults(func=_fit_command)


def _add_estimator_options(parser):
    """``fit``'s options of the fused estimator: what is fitted, fused and partitioned."""
    from .fusion import FUSERS
    from .partition import STRATEGIES

    parser.add_argument(
        "--estimator",
        required=True,
        metavar="DOTTED.PATH",
        help="estimator class, e.g. sklearn.linear_model.SGDClassifier",
    )
    parser.add_argument(
        "--params",
        default="{}",
        metavar="JSON",
        help="estimator parameters as a JSON object, e.g. '{\"alpha\": 0.001}' (default: {})",
    )
    parser.add_argument(
        "--fusion",
        default="auto",
        choices=("auto", *FUSERS),
        help="fusion strategy (default: auto)",
    )
    parser.add_argument(
        "--partitions",
        type=_positive_int,
        default=None,
        metavar="N",
        help="number of partitions (default: one per block of DATA (a file or a row "
        "group) where DATA has at least one block per thread of the cluster, else one "
        "per thread, in uniform parts of at least 50 rows)",
    )
    parser.add_argument(
        "--partition",
        default=None,
        choices=tuple(s for s in STRATEGIES if s != "auto"),
        help="how rows are laid over partitions (default: the blocks of "
        "DATA, or uniform parts with --partitions)",
    )
    parser.add_argument(
        "--on-error",
        default="raise",
        choices=("raise", "skip"),
        help="a partition whose fit fails (NaN in its rows, one class only, ...): "
        "raise fails the fit; skip leaves it out of the fusion and says so "
        "(default: raise)",
    )


def _add_load_options(parser):
    from .persist import MAX_BYTES

    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="TYPE",
        help="also trust this type when loading MODEL (a fully qualified name that the "
        "refusal named); review it first; repeat for several",
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive_int,
        default=MAX_BYTES,
        metavar="N",
        help=f"refuse a MODEL that unpacks to more than N bytes (default: {MAX_BYTES:,}; "
        "daskfuse.load's max_bytes)",
    )


def _add_predict_parser(sub):
    predict = sub.add_parser(
        "predict",
        epilog=EXIT_STATUS_HELP,
        help="write a saved model's predictions for a CSV or parquet data set",
        description=(
            "Load MODEL (written by daskfuse fit or daskfuse.save), apply it to every "
            "partition of DATA and write the predictions, one row per row of DATA in "
            "order, to one CSV or parquet file (by the suffix of --out). The model's "
            "feature columns are taken from DATA; other columns (the label) are left "
            "out. Without --scheduler or --workers it runs in this process."
        ),
    )
    predict.add_argument("model", metavar="MODEL", help="model file")
    predict.add_argument(
        "data", metavar="DATA", help="CSV or parquet file, directory of part files, or glob"
    )
    predict.add_argument(
        "--out", required=True, metavar="PRED", help="file to write: .csv or .parquet"
    )
    predict.add_argument(
        "--target", metavar="COL", help="the label column of DATA, left out of the features"
    )
    predict.add_argument(
        "--method",
        default="auto",
        choices=("auto", *PREDICT_METHODS),
        help="what to compute (default: auto: predict, or transform for a transformer)",
    )
    _add_cluster_options(
        predict,
        "start a LocalCluster of N worker processes for the predictions "
        "(default: none; dask's threads in this process)",
    )
    _add_load_options(predict)
    predict.set_defaults(func=_predict_command)


def _add_report_parser(sub):
    report = sub.add_parser(
        "report",
        epilog=EXIT_STATUS_HELP,
        help="print a saved model's estimator, fusion, classes and partition table",
        description="Load MODEL and print what it is and how it was fitted.",
    )
    report.add_argument("model", metavar="MODEL", help="model file")
    _add_load_options(report)
    report.set_defaults(func=_report_command)


def main(argv=None):
    """Run the ``daskfuse`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        The exit status: 0 on success, :data:`ERROR_STATUS` (2, as argparse's usage
        errors) on any error reported in one line on stderr (a bad argument, file,
        column, estimator, model file, or data that cannot be fitted or predicted as
        asked), 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from rich.console import Console

    from .exceptions import FusionError, PartitionError

    console = Console(highlight=False)
    try:
        return args.func(args, console)
    except (UserError, DataError, FusionError, PartitionError) as exc:
        # a mistake in the command, its files or its data: a message, not a traceback
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return ERROR_STATUS
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------- demo
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
        keep=args.keep,
        console=console,
    )
    return 0


# --------------------------------------------------------------------------- helpers
def _one_line(exc):
    """The message of ``exc`` on one line (whitespace runs collapsed)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _format_of(path):
    name = str(path).lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _hidden(name):
    # Spark's _SUCCESS, dask's _metadata/_common_metadata, .crc files and the like
    return name.startswith((".", "_"))


def _data_files(path):
    """The data files under the directory ``path``, by format."""
    found = {"csv": [], "parquet": []}
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in sorted(files):
            fmt = _format_of(name)
            if fmt is not None and not _hidden(name):
                found[fmt].append(os.path.join(root, name))
    return found


def _suffixes():
    return ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)


def _csv_has_rows(path):
    """Whether the CSV file ``path`` holds a non-blank line after its header line."""
    with open(path, "rb") as f:
        f.readline()
        return any(line.strip() for line in f)


def _csv_with_rows(path, files):
    """The CSV ``files`` that hold rows; header-only (or empty) files are left out.

    A header-only file holds no rows, and dask would take the types of its columns
    (strings, for no values) for those of every file.
    """
    kept = [f for f in files if _csv_has_rows(f)]
    if not kept:
        if len(files) > 1:
            what = f"all {len(files)} CSV files it names hold"
        elif os.path.isfile(path):
            what = "it holds"
        else:
            what = f"{files[0]} holds"
        raise UserError(f"{path} has no rows: {what} only a header line")
    return kept


def read_data(path):
    """Read a CSV or parquet data set as a dask DataFrame.

    Parameters
    ----------
    path : str
        A ``.csv`` or ``.parquet`` (``.pq``) file; a directory holding part files of
        one of these formats (searched recursively, names starting with ``.`` or
        ``_`` skipped; a parquet directory is read as a parquet data set); or a glob
        pattern (``data/part-*.csv``) matching files of one format. The files are
        read lazily with :func:`dask.dataframe.read_csv` or
        :func:`dask.dataframe.read_parquet`.

    Returns
    -------
    frame : dask.dataframe.DataFrame
        One or more partitions per file. A CSV file holding only a header line has
        no rows and is left out (so that its empty columns do not make every file's
        columns strings).

    Raises
    ------
    UserError
        The path does not exist, a glob matches no file, the format cannot be told
        from the names, every CSV file holds only a header, or the files cannot be
        read; the message is one line.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from daskfuse.cli import read_data
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for i in range(2):
    ...         pd.DataFrame({"x": [i, i], "y": [0, 1]}).to_csv(
    ...             os.path.join(folder, f"part-{i}.csv"), index=False)
    ...     frame = read_data(os.path.join(folder, "part-*.csv"))
    ...     print(frame.npartitions, len(frame))
    2 4
    """
    import dask.dataframe as dd

    path = os.fspath(path)
    fmt, source = _data_source(path)
    try:
        if fmt == "csv":
            files = [source] if isinstance(source, str) else source
            return dd.read_csv(_csv_with_rows(path, files))
        return dd.read_parquet(source)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} as {fmt}: {_one_line(exc)}") from None


def _data_source(path):
    """``(format, source)`` of the data set at ``path`` (see :func:`read_data`).

    ``source`` is the absolute path of a file or a parquet directory, or the list of
    the absolute paths of the files to read.
    """
    if os.path.isdir(path):
        found = _data_files(path)
        if found["csv"] and found["parquet"]:
            raise UserError(
                f"{path} holds both CSV and parquet files; name the files to read "
                "with a glob, e.g. DIR/*.parquet"
            )
        if found["parquet"]:
            return "parquet", os.path.abspath(path)
        if found["csv"]:
            return "csv", [os.path.abspath(f) for f in found["csv"]]
        raise UserError(f"{path} holds no data files ({_suffixes()})")
    if os.path.isfile(path):
        fmt = _format_of(path)
        if fmt is None:
            raise UserError(
                f"cannot tell the format of {path}: expected a name ending in {_suffixes()}"
            )
        return fmt, os.path.abspath(path)
    if glob.has_magic(path):
        matches = sorted(m for m in glob.glob(path, recursive=True) if os.path.isfile(m))
        if not matches:
            raise UserError(f"no files match {path}")
        formats = {_format_of(m) for m in matches}
        if None in formats or len(formats) > 1:
            odd = [m for m in matches if _format_of(m) != _format_of(matches[0])]
            odd = odd or [m for m in matches if _format_of(m) is None]
            raise UserError(
                f"{path} matches files of different or unknown formats ({odd[0]}); a "
                f"glob must match files of one format: {_suffixes()}"
            )
        return formats.pop(), [os.path.abspath(m) for m in matches]
    raise UserError(f"no such file or directory: {path}")


def _same_frame(frame):
    """``frame`` itself (a step that dask's optimizer cannot look through)."""
    return frame


def _columns_text(columns):
    return ", ".join(map(str, columns))


def _parse_params(text):
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--params is not valid JSON: {exc} in {text!r}") from None
    if not isinstance(params, dict):
        raise UserError(
            f'--params must be a JSON object ({{"name": value, ...}}); got a '
            f"{type(params).__name__}: {text!r}"
        )
    return params


def _import_estimator(path):
    """The estimator class named by the dotted ``path``."""
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise UserError(
            f"--estimator {path!r} is not a dotted path to a class, like "
            "sklearn.linear_model.SGDClassifier"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"--estimator {path}: cannot import {module_name}: {exc}") from None
    except Exception as exc:  # a broken third-party module: say so
        raise UserError(
            f"--estimator {path}: importing {module_name} failed: "
            f"{type(exc).__name__}: {_one_line(exc)}"
        ) from None
    # a plain attribute look-up: nothing named by the path is called (no property, no
    # descriptor, no module __getattr__)
    try:
        cls = inspect.getattr_static(module, attr)
    except AttributeError:
        raise UserError(
            f"--estimator {path}: module {module_name} has no {attr!r} (name the module "
            "that defines the class)"
        ) from None
    if not isinstance(cls, type):
        what = "a module" if inspect.ismodule(cls) else f"a {type(cls).__name__}"
        raise UserError(
            f"--estimator {path} is not a scikit-learn estimator class: it is {what}, not a class"
        )
    missing = [
        name for name in ("fit", "get_params") if inspect.getattr_static(cls, name, None) is None
    ]
    if missing:
        raise UserError(
            f"--estimator {path} is not a scikit-learn estimator class: the class has no "
            f"{' and no '.join(missing)}"
        )
    return cls


def _build_estimator(cls, params):
    name = cls.__name__
    try:
        estimator = cls(**params)
    except TypeError as exc:
        try:
            valid = f"; its parameters: {', '.join(cls._get_param_names())}"
        except Exception:  # only for the message
            valid = ""
        raise UserError(f"--params rejected by {name}: {_one_line(exc)}{valid}") from None
    except ValueError as exc:
        raise UserError(f"--params rejected by {name}: {_one_line(exc)}") from None
    except Exception as exc:  # a third-party __init__ that fails otherwise
        raise UserError(
            f"--estimator {name}: making it from --params failed: "
            f"{type(exc).__name__}: {_one_line(exc)}"
        ) from None
    # scikit-learn's own check of the parameters, for the classes that declare their
    # constraints (a third-party BaseEstimator subclass need not)
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate) and getattr(cls, "_parameter_constraints", None) is not None:
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise UserError(f"--params rejected by {name}: {_one_line(exc)}") from None
    return estimator


def _meta_estimator(estimator):
    """The daskfuse meta-estimator class and task kind for ``estimator``."""
    from sklearn.base import is_classifier, is_clusterer, is_regressor

    from . import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer

    if is_classifier(estimator):
        return FusedClassifier, "classifier"
    if is_regressor(estimator):
        return FusedRegressor, "regressor"
    if is_clusterer(estimator):
        return FusedClusterer, "clusterer"
    if hasattr(estimator, "transform"):
        return FusedTransformer, "transformer"
    raise UserError(
        f"--estimator {type(estimator).__name__} is neither a classifier, a regressor, "
        "a clusterer nor a transformer"
    )


def _check_writable(path, option):
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a directory; give a file name")
    if not os.path.isdir(parent):
        raise UserError(f"{option} {path}: no such directory: {parent}")


def _check_numeric(frame, columns):
    import pandas as pd

    bad = [
        f"{c} ({frame.dtypes[c]})"
        for c in columns
        if not (
            pd.api.types.is_numeric_dtype(frame.dtypes[c])
            or pd.api.types.is_bool_dtype(frame.dtypes[c])
        )
    ]
    if bad:
        raise UserError(
            f"feature column(s) {', '.join(bad)} are not numeric; encode them first, or "
            "leave them out with --drop COL"
        )


@contextlib.contextmanager
def _dask_client(scheduler, workers, threads, console):
    """A distributed Client for the command: to ``scheduler``, or a new LocalCluster.

    ``scheduler`` and ``workers`` None: no client (dask's threaded scheduler).
    """
    if scheduler is None and workers is None:
        yield None
        return
    from distributed import Client

    if scheduler is not None:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(
                f"cannot connect to the dask scheduler at {scheduler}: {_one_line(exc)}"
            ) from None
        console.print(f"Connected to the dask scheduler at {scheduler}", markup=False)
        with client, _quiet_after_interrupt():
            yield client
        return
    cluster = _start_local_cluster(
        workers,
        threads,
        console,
        # no dashboard, and the scheduler's HTTP server on a free port (its
        # default, 8787, may be taken by another cluster)
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
        # a task that fails is reported by this command, in one line; the
        # workers' own error logs would repeat it with a traceback
        silence_logs=logging.CRITICAL,
    )
    with cluster, Client(cluster) as client, _quiet_after_interrupt():
        yield client


def _json_safe(value):
    """``value`` as JSON: string keys, builtins, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(_json_safe(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


SCORE_NAMES = {
    "classifier": "accuracy",
    "regressor": "r2",
    "clusterer": "score (minus the inertia)",
    "transformer": None,
}


# --------------------------------------------------------------------------- fit
def _fit_command(args, console):
    params, cls, template, meta_cls, kind = _fit_estimator(args)
    supervised = kind in ("classifier", "regressor")
    frame = read_data(args.data)
    features = _fit_features(frame, args, kind, cls.__name__)
    X, y = _fit_inputs(frame, features, args.target if supervised else None)

    progress = bool(args.progress and console.is_terminal)
    workers = FIT_WORKERS if args.scheduler is None and args.workers is None else args.workers
    with _dask_client(args.scheduler, workers, args.threads_per_worker, console):
        model = meta_cls(
            template,
            fusion=args.fusion,
            partition=args.partition,
            n_partitions=_partition_count(args, frame.npartitions),
            on_error=args.on_error,
            random_state=args.seed,
            verbose=int(progress),
        )
        console.print(
            f"Fitting {meta_cls.__name__}({cls.__name__}) on {args.data}: "
            f"{len(features)} features, {frame.npartitions} block(s) ...",
            markup=False,
            soft_wrap=True,
        )
        if args.progress and not progress:
            console.print("  (no progress bar: stdout is not a terminal)")
        fit_seconds, score = _fit_and_score(model, X, y, kind, args.data)
    _save_model(model, args.out)
    _print_fit_summary(model, kind, fit_seconds, score, args.out, console)
    if args.report:
        report = {
            "model": os.path.abspath(args.out),
            "data": args.data,
            "estimator": args.estimator,
            "params": params,
            "meta_estimator": meta_cls.__name__,
            "fusion": model.fusion_.name,
            "fusion_repr": repr(model.fusion_),
            "n_partitions": model.n_partitions_,
            "partition": repr(model.partition_),
            "target": args.target if supervised else None,
            "features": features,
            "classes": getattr(model, "classes_", None),
            "rows": int(model.partition_report_["rows"].sum()),
            "fit_seconds": fit_seconds,
            "score_name": SCORE_NAMES[kind],
            "train_score": score,
            "scheduler": args.scheduler
            or (f"LocalCluster({workers} workers x {args.threads_per_worker} threads)"),
            "partitions": model.partition_report_.to_dict("records"),
        }
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(_json_safe(report), f, indent=2)
            f.write("\n")
        console.print(f"Report written to {args.report}", markup=False)
    return 0


def _fit_estimator(args):
    """What ``fit`` fits, checked before any data is read.

    Returns ``(params, cls, template, meta_cls, kind)``: the ``--params``, the
    ``--estimator`` class, an instance of it, the daskfuse meta-estimator class and
    its task kind. The ``--fusion`` must be able to fuse the estimator and ``--out``
    and ``--report`` must be writable.
    """
    from .fusion import resolve_fusion

    params = _parse_params(args.params)
    cls = _import_estimator(args.estimator)
    template = _build_estimator(cls, params)
    meta_cls, kind = _meta_estimator(template)
    # a strategy that cannot fuse the estimator: FusionError (one line) before any work
    resolve_fusion(args.fusion, template)
    _check_writable(args.out, "--out")
    if args.report:
        _check_writable(args.report, "--report")
    return params, cls, template, meta_cls, kind


def _fit_features(frame, args, kind, name):
    """The feature columns of ``frame``: all but ``--target`` and the ``--drop`` ones.

    ``name`` is the estimator's, for the message when a ``kind`` that needs a
    target has none.
    """
    columns = list(frame.columns)
    if kind in ("classifier", "regressor") and args.target is None:
        raise UserError(
            f"--target is required to fit a {kind} ({name}); the columns of "
            f"{args.data}: {_columns_text(columns)}"
        )
    for column, option in [(args.target, "--target"), *((d, "--drop") for d in args.drop)]:
        if column is not None and column not in columns:
            raise UserError(
                f"{option} {column!r} is not a column of {args.data}; its columns: "
                f"{_columns_text(columns)}"
            )
    features = [c for c in columns if c != args.target and c not in args.drop]
    if not features:
        raise UserError(f"{args.data} has no feature columns besides the target")
    _check_numeric(frame, features)
    return features


def _fit_inputs(frame, features, target):
    """``X`` (the ``features`` of ``frame``) and ``y`` (its ``target``; None without)."""
    used = frame[features + [target]] if target is not None else frame[features]
    # dask's optimizer may merge the row blocks of a parquet read when only some of
    # the columns are read (X's columns, y's column): behind an opaque step, X and y
    # are read with one column selection, so their row blocks stay aligned
    used = used.map_partitions(_same_frame)
    return used[features], (used[target] if target is not None else None)


def _partition_count(args, n_blocks):
    """``n_partitions`` of the fit: ``--partitions``, else as the Python API chooses.

    Without ``--partitions`` and ``--partition``, DATA's ``n_blocks`` blocks are the
    partitions where there are at least as many as the active cluster's threads;
    fewer blocks (one small CSV file) give ``"auto"``: one partition per thread, in
    uniform parts of at least 50 rows, as for an in-memory input.
    """
    from .partition import cluster_threads

    if args.partitions is not None or args.partition is not None:
        return args.partitions
    return None if n_blocks >= cluster_threads() else "auto"


def _fit_and_score(model, X, y, kind, data):
    """Fit ``model``; its fit seconds and training score (None for a transformer).

    A failure other than daskfuse's own errors is a :class:`DataError` in one line;
    NaN or infinity in the features names the columns of ``data`` that hold them.
    The fit's warnings (partitions skipped with ``--on-error skip``) are printed on
    stderr, one line each.
    """
    from .exceptions import FusionError, PartitionError

    start = time.perf_counter()
    score = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(X, y)
        fit_seconds = time.perf_counter() - start
        _print_warnings(caught, model, X)
        if kind != "transformer" and hasattr(model, "score"):
            score = _training_score(model, X, y)
    except PartitionError as exc:
        raise _nonfinite_error(exc, X, model, data) from None
    except FusionError:
        raise  # one line (see main)
    except Exception as exc:
        # the data cannot be read or fitted as asked (NaNs, a CSV whose columns
        # change type between files, an estimator that fails, ...): one line, not
        # a traceback
        raise DataError(f"fitting failed: {type(exc).__name__}: {_one_line(exc)}") from None
    return fit_seconds, score


def _training_score(model, X, y):
    """``model``'s score on the training rows, or None (said on stderr) where rows
    that ``--on-error skip`` left out (NaN) cannot be scored."""
    try:
        return float(model.score(X, y) if y is not None else model.score(X))
    except ValueError as exc:
        if not getattr(model, "n_partitions_skipped_", 0):
            raise
        reason = _one_line(exc).split(". ")[0]  # scikit-learn's first sentence
        print(f"{PROG} fit: warning: no training score: {reason}", file=sys.stderr)
        return None


def _print_warnings(caught, model, X):
    """Print each distinct warning of ``caught`` on stderr in one line.

    The fit's warning about partitions skipped by ``--on-error skip`` speaks of the
    Python API (``on_error``, column positions): it is said here with the options
    and the column names instead.
    """
    skipped = _skipped_partitions(model)
    messages = [_one_line(w.message) for w in caught]
    if skipped:
        messages = [m for m in messages if "partitions were skipped" not in m]
        n = model.n_partitions_
        nonfinite = any(str(e).startswith(NONFINITE_DETAIL) for _, e in skipped)
        names = _nonfinite_columns(X) if nonfinite else None  # one pass for all
        messages.append(
            f"{len(skipped)} of {_plural(n, 'partition')} skipped (--on-error skip) and left "
            "out of the fusion: "
            + "; ".join(f"partition {p}: {_error_text(e, names)}" for p, e in skipped)
        )
    for message in dict.fromkeys(messages):
        print(f"{PROG} fit: warning: {message}", file=sys.stderr)


def _skipped_partitions(model):
    """``(partition, error)`` of every partition that the fit skipped."""
    report = getattr(model, "partition_report_", None)
    if report is None or "skipped" not in report:
        return []
    rows = report[report["skipped"].astype(bool)]
    return list(zip(rows["partition"], rows["error"]))


#: how a partition task says that X holds NaN or infinity (daskfuse._graph)
NONFINITE_DETAIL = "X contains NaN or infinity"


def _nonfinite_columns(X):
    """The names of the columns of the dask DataFrame ``X`` that hold NaN or
    infinity (one pass), or None where they cannot be found."""
    try:
        bad = (X.isna() | X.isin([np.inf, -np.inf])).any().compute()
    except Exception:  # only for a message: the partition's own error stands
        return None
    return [str(c) for c, flag in bad.items() if flag] or None


def _error_text(detail, names):
    """A partition's error ``detail`` in the command line's words: ``names`` are the
    feature columns that hold NaN or infinity (None: not known)."""
    detail = str(detail)
    if names is None or not detail.startswith(NONFINITE_DETAIL):
        return detail
    return f"feature column(s) {_columns_text(names)} hold NaN or infinity"


def _nonfinite_error(exc, X, model, data):
    """``exc``, or for NaN/infinity in X a :class:`DataError` naming the columns.

    The partition task names columns by position and the Python API's
    ``on_error``; here the feature columns of ``data`` that hold NaN or infinity
    are found (one pass) and ``--on-error`` is named.
    """
    names = _nonfinite_columns(X) if str(exc.detail).startswith(NONFINITE_DETAIL) else None
    if names is None:
        return exc
    estimator = type(model.estimator).__name__
    return DataError(
        f"partition {exc.index}: feature column(s) {_columns_text(names)} of {data} hold "
        f"NaN or infinity, which {estimator} cannot fit: impute or drop those rows, leave "
        "the column(s) out with --drop COL, or pass --on-error skip to leave the "
        "partitions that hold them out of the fusion"
    )


def _save_model(model, path):
    from .persist import save

    try:
        save(model, path)
    except (TypeError, ValueError, OSError) as exc:
        raise DataError(f"cannot write the model to {path}: {_one_line(exc)}") from None


def _print_fit_summary(model, kind, fit_seconds, score, path, console):
    """Print how the fit went, the partition table, and what loading ``path`` needs."""
    console.print(
        f"  done in {fit_seconds:.2f} s: {_plural(model.n_partitions_, 'partition')}, "
        f"fusion={model.fusion_!r}",
        markup=False,
    )
    if score is not None:
        console.print(f"Training {SCORE_NAMES[kind]}: {score:.4f}", markup=False)
    console.print()
    console.print(_report_table(model.partition_report_, score_label=_score_label(kind)))
    console.print(f"Model written to {path}", markup=False)
    needs_trust = _needs_trust(path)
    if needs_trust:
        console.print(
            f"Note: loading this model needs --trust {' --trust '.join(needs_trust)} "
            f"(daskfuse.load(path, trusted={needs_trust!r})): types that daskfuse does "
            "not trust by default",
            markup=False,
            soft_wrap=True,
        )


def _score_label(kind):
    return {"classifier": "train\naccuracy", "regressor": "train\nR²"}.get(kind, "train\nscore")


def _needs_trust(path):
    """The types in the model file at ``path`` that loading it must be told to trust."""
    import skops.io

    from .persist import trusted_types

    return sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted_types()))


def _load_model(path, trust, max_bytes):
    from .persist import ModelFileError, load

    try:
        return load(path, trusted=trust or None, max_bytes=max_bytes)
    except FileNotFoundError:
        raise UserError(f"no such model file: {path}") from None
    except ModelFileError as exc:
        hint = ""
        if getattr(exc, "types", None):
            hint = f" (from the command line: --trust {' --trust '.join(exc.types)})"
        raise UserError(f"{_one_line(exc)}{hint}") from None


# --------------------------------------------------------------------------- predict
def _feature_columns(model, frame, args):
    columns = list(frame.columns)
    if args.target is not None and args.target not in columns:
        raise UserError(
            f"--target {args.target!r} is not a column of {args.data}; its columns: "
            f"{_columns_text(columns)}"
        )
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        names = [str(n) for n in names]
        missing = [n for n in names if n not in columns]
        if missing:
            raise UserError(
                f"{args.data} lacks the model's feature column(s) "
                f"{_columns_text(missing)}; its columns: {_columns_text(columns)}"
            )
        return names
    if args.target is not None:
        columns = [c for c in columns if c != args.target]
    n = getattr(model, "n_features_in_", None)
    if n is not None and len(columns) != n:
        raise UserError(
            f"{args.data} has {len(columns)} feature column(s) but the model expects {n}; "
            "give the label column with --target"
        )
    return columns


def _predict_method(model, method):
    if method != "auto":
        if not hasattr(model, method):
            raise UserError(f"the model ({type(model).__name__}) has no {method}")
        return method
    for name in ("predict", "transform"):
        if hasattr(model, name):
            return name
    raise UserError(f"the model ({type(model).__name__}) has neither predict nor transform")


def _apply_model(frame, model, method, use_names, meta):
    """One partition's output as a DataFrame like ``meta`` (a ``daskfuse-predict`` task).

    A partition without rows (an empty part file) gives no rows: scikit-learn refuses
    to apply a model to zero samples.
    """
    import pandas as pd

    if len(frame) == 0:
        return meta.set_axis(frame.index)
    out_columns = list(meta.columns)
    X = frame if use_names else frame.to_numpy()
    values = np.asarray(getattr(model, method)(X))
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    return pd.DataFrame(values, columns=out_columns, index=frame.index)


def _output_columns(model, method, features, use_names):
    """Column names and a probe output of ``method``, from one row of zeros."""
    import pandas as pd

    probe = pd.DataFrame(np.zeros((1, len(features))), columns=features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.asarray(getattr(model, method)(probe if use_names else probe.to_numpy()))
    if values.ndim == 1:
        return ["prediction" if method == "predict" else method], values
    width = values.shape[1]
    classes = getattr(model, "classes_", None)
    if (
        method in ("predict_proba", "decision_function")
        and classes is not None
        and len(classes) == width
    ):
        prefix = "proba" if method == "predict_proba" else "decision"
        return [f"{prefix}_{c}" for c in classes], values
    if method == "transform" and hasattr(model, "get_feature_names_out"):
        try:
            names = [str(n) for n in model.get_feature_names_out()]
            if len(names) == width:
                return names, values
        except (AttributeError, TypeError, ValueError):
            pass
    return [f"{method}_{i}" for i in range(width)], values


class _Writer:
    """Append DataFrames to one CSV or parquet file, written to a temporary name first."""

    def __init__(self, path, fmt):
        self.path, self.fmt = path, fmt
        self.tmp = f"{path}.tmp-{os.getpid()}"
        self.rows = 0
        self._parquet = None
        self._schema = None
        self._empty = None

    def write(self, df):
        if self.fmt == "csv":
            df.to_csv(
                self.tmp,
                mode="w" if self.rows == 0 and self._empty is None else "a",
                header=self.rows == 0 and self._empty is None,
                index=False,
            )
            self._empty = False
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if len(df) == 0:
                self._empty = df if self._empty is None else self._empty
                return
            if self._parquet is None:
                table = pa.Table.from_pandas(df, preserve_index=False)
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self.tmp, self._schema)
            else:
                table = pa.Table.from_pandas(df, preserve_index=False, schema=self._schema)
            self._parquet.write_table(table)
        self.rows += len(df)

    def close(self):
        if self.fmt == "parquet":
            if self._parquet is None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.Table.from_pandas(self._empty, preserve_index=False), self.tmp)
            else:
                self._parquet.close()
        os.replace(self.tmp, self.path)

    def discard(self):
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
        with contextlib.suppress(OSError):
            os.remove(self.tmp)


def _predict_command(args, console):
    fmt = _format_of(args.out)
    if fmt is None:
        raise UserError(f"--out {args.out}: expected a name ending in {_suffixes()}")
    _check_writable(args.out, "--out")
    model = _load_model(args.model, args.trust, args.max_bytes)
    method = _predict_method(model, args.method)
    frame = read_data(args.data)
    parts = _prediction_parts(model, method, frame, args)
    writer = _Writer(args.out, fmt)
    with _dask_client(args.scheduler, args.workers, args.threads_per_worker, console):
        console.print(
            f"Predicting with {type(model).__name__}.{method} on {args.data}: "
            f"{len(parts)} block(s) ...",
            markup=False,
            soft_wrap=True,
        )
        _write_parts(parts, writer)
    console.print(f"Wrote {writer.rows:,} rows of {method} output to {args.out}", markup=False)
    return 0


def _prediction_parts(model, method, frame, args):
    """The ``method`` output of ``model`` for ``frame``: a delayed DataFrame a partition."""
    import dask
    import pandas as pd

    features = _feature_columns(model, frame, args)
    use_names = getattr(model, "feature_names_in_", None) is not None
    out_columns, probe = _output_columns(model, method, features, use_names)
    meta = pd.DataFrame(
        {c: pd.Series([], dtype=probe.dtype) for c in out_columns}, columns=out_columns
    )
    X = frame[features]
    model_arg = dask.delayed(model, pure=True)
    predictions = X.map_partitions(_apply_model, model_arg, method, use_names, meta, meta=meta)
    return predictions.to_delayed()


def _write_parts(parts, writer):
    """Compute ``parts`` :data:`PREDICT_BATCH` at a time and write them with ``writer``.

    On a failure nothing is left behind; a failure of the data or the model's method
    is a :class:`DataError` in one line.
    """
    import dask

    try:
        for start in range(0, len(parts), PREDICT_BATCH):
            for df in dask.compute(*parts[start : start + PREDICT_BATCH]):
                writer.write(df)
        writer.close()
    except Exception as exc:  # the data or the model's method failed: one line
        writer.discard()
        raise DataError(f"predicting failed: {type(exc).__name__}: {_one_line(exc)}") from None
    except BaseException:
        writer.discard()
        raise


# --------------------------------------------------------------------------- report
def _report_command(args, console):
    import pandas as pd

    model = _load_model(args.model, args.trust, args.max_bytes)
    size = os.path.getsize(args.model)
    console.print(
        f"Model:       {args.model} ({type(model).__name__}, {_nbytes(size)})", markup=False
    )
    inner = getattr(model, "estimator", None)
    fused = getattr(model, "fused_estimator_", None)
    if inner is not None:
        console.print(f"Estimator:   {inner!r}", markup=False)
    if fused is not None:
        console.print(f"Fused model: {type(fused).__name__}", markup=False)
    fusion = getattr(model, "fusion_", None)
    if fusion is not None:
        console.print(f"Fusion:      {fusion!r}", markup=False)
    partition = getattr(model, "partition_", None)
    if partition is not None:
        console.print(
            f"Partitions:  {getattr(model, 'n_partitions_', '?')} ({partition!r})",
            markup=False,
        )
    classes = getattr(model, "classes_", None)
    if classes is not None:
        console.print(f"Classes:     {_columns_text(list(classes))}", markup=False)
    n = getattr(model, "n_features_in_", None)
    if n is not None:
        names = getattr(model, "feature_names_in_", None)
        listed = f": {_columns_text(list(names))}" if names is not None else ""
        console.print(f"Features:    {n}{listed}", markup=False)
    report = getattr(model, "partition_report_", None)
    console.print()
    if isinstance(report, pd.DataFrame):
        kind = getattr(model, "_kind", None)
        console.print(_report_table(report, limit=None, score_label=_score_label(kind)))
    else:
        console.print("No partition report: not a daskfuse meta-estimator.")
    return 0
