"""Input handling: recognise numpy / pandas / dask inputs and align X with y."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from dask.base import is_dask_collection

from ._validation import is_int

__all__ = [
    "DaskBlocks",
    "check_dense",
    "check_frame_columns",
    "check_label_types",
    "dask_blocks",
    "dask_classes",
    "float_array",
    "is_dask_input",
    "keeps_dtypes",
    "missing_as_nan",
    "seed_sequence",
]


def _label_kind(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None  # missing: the checks for missing values name it
    if isinstance(value, str | bytes):
        return "str"
    if isinstance(value, numbers.Number):
        return "number"
    return type(value).__name__


def label_kinds(y):
    """The kinds of the labels in ``y``: a set of ``"str"``, ``"number"`` or type names."""
    y = np.asarray(y)
    if y.dtype.kind != "O":
        return {"str" if y.dtype.kind in "SU" else "number"}
    return {_label_kind(v) for v in y.ravel()} - {None}


def aligned(a):
    """``a``, or an aligned copy of it where it is a NumPy array that is not aligned.

    An array that ``distributed`` deserializes after moving it between processes can
    start at any byte offset of its frame. NumPy flags it as not aligned, and NumPy
    and scikit-learn then run several times slower on it: ``LogisticRegression`` on
    250,000 x 50 rows took 1.66 s instead of 0.34 s, against 0.025 s for the copy.
    Every partition, block and target a task receives passes through here.
    """
    if isinstance(a, np.ndarray) and not a.flags.aligned:
        return a.copy(order="K")
    return a


def float_array(block):
    """``block`` as a float64 array; a DataFrame's missing values (``pd.NA``) are NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> float_array(pd.DataFrame({"a": pd.array([1.5, None], dtype="Float64")}))
    array([[1.5],
           [nan]])
    """
    if isinstance(block, pd.DataFrame):
        return block.to_numpy(dtype=np.float64, na_value=np.nan)
    block = np.asarray(block)
    if block.dtype == object:  # a nullable column's values, pd.NA among them
        block = np.where(pd.isna(block), np.nan, block)
    return np.asarray(block, dtype=np.float64)


def keeps_dtypes(estimator_accepts_objects, X):
    """Whether ``X`` goes to the estimator in its own dtypes rather than as floats.

    Only for an estimator that takes string columns
    (:func:`~daskfuse._adapters.accepts_objects`), and only for a DataFrame (pandas
    or dask: its column names and dtypes are kept) or an array that is not of
    numbers; a numeric array is converted to float as for every estimator.
    """
    if not estimator_accepts_objects:
        return False
    if isinstance(X, pd.DataFrame | dd.DataFrame):
        return True
    dtype = getattr(X, "dtype", None)
    if dtype is None:
        dtype = np.asarray(X).dtype
    return np.dtype(dtype).kind not in "biuf"


def _na_strings(dtype):
    return isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA


def missing_as_nan(frame):
    """``frame`` with its ``pd.NA``-missing string columns as object columns holding NaN.

    dask stores string columns as ``string[pyarrow]``, whose missing value is
    ``pd.NA``; scikit-learn's encoders cannot sort ``pd.NA`` among strings, but take
    the NaN that a pandas string (``str``) or object column holds, as in the frame
    the user built. Other columns, and anything not a DataFrame, are left as they are.

    Examples
    --------
    >>> import pandas as pd
    >>> missing_as_nan(pd.DataFrame({"s": pd.array(["a", None], dtype="string")}))["s"].tolist()
    ['a', nan]
    """
    if not isinstance(frame, pd.DataFrame):
        return frame
    na = [c for c, t in frame.dtypes.items() if _na_strings(t)]
    if not na:
        return frame
    frame = frame.copy(deep=False)
    for c in na:
        column = frame[c]
        frame[c] = column.astype(object).where(column.notna(), np.nan)
    return frame


def check_label_types(y, what="y"):
    """Raise ``ValueError`` if the class labels in ``y`` are of mixed types.

    numpy cannot sort (and so cannot find the classes of) labels that mix strings
    and numbers; the error says so instead of ``'<' not supported``.
    """
    kinds = label_kinds(y)
    if len(kinds) > 1:
        raise ValueError(
            f"{what} mixes class labels of types {sorted(kinds)}; a classifier needs "
            "labels of one type (all strings or all numbers)"
        )


def check_dense(X, what="X", blocks=False):
    """Raise ``TypeError`` for sparse input: daskfuse fits dense partitions.

    ``blocks`` says that ``X`` is one block (or the meta) of a dask array ``what``.
    """
    module = type(X).__module__
    if not module.startswith(("scipy.sparse", "sparse")):
        return
    kind = f"{module}.{type(X).__name__}"
    got = f"a dask array of sparse blocks ({kind})" if blocks else f"a sparse matrix ({kind})"
    fix = f"{what}.map_blocks(lambda b: b.toarray())" if blocks else f"{what}.toarray()"
    raise TypeError(
        f"{what} is {got}; daskfuse fits dense partitions only (its partition checks "
        "and several fusions, exact statistics among them, work on dense arrays): "
        f"densify it first, e.g. {fix}"
    )


def check_frame_columns(X):
    """Raise ``ValueError`` naming the columns of a pandas ``X`` that are not numbers.

    Object columns that hold numbers are fine (scikit-learn converts them).
    """
    if not isinstance(X, pd.DataFrame):
        return
    bad = []
    for name, column in X.items():
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(
            column.dtype
        ):
            continue
        try:
            as_numbers = pd.to_numeric(np.asarray(column, dtype=object), errors="coerce")
        except (TypeError, ValueError):
            as_numbers = np.full(len(column), np.nan)
        if pd.isna(as_numbers).sum() > column.isna().sum():
            bad.append((name, str(column.dtype)))
    if bad:
        raise ValueError(
            f"X must have numeric columns only; columns {[str(c) for c, _ in bad]} hold "
            f"values that are not numbers (dtypes {[t for _, t in bad]}): encode them "
            "first, e.g. with sklearn.preprocessing.OrdinalEncoder"
        )


def _block_classes(y):
    check_label_types(y)
    return np.unique(np.asarray(y))


def dask_classes(y_blocks):
    """The sorted class labels of a dask ``y``: one pass over its blocks."""
    uniques = dask.compute(*[delayed(_block_classes, pure=True)(yb) for yb in y_blocks])
    labels = np.concatenate([np.asarray(u, dtype=object) for u in uniques])
    check_label_types(labels)
    return np.unique(np.concatenate([np.asarray(u) for u in uniques]))


def is_dask_input(obj):
    return is_dask_collection(obj)


def seed_sequence(random_state):
    """A ``numpy.random.SeedSequence`` from a scikit-learn style ``random_state``.

    Raises
    ------
    TypeError
        ``random_state`` is not None, an int, a ``numpy.random.Generator`` or a
        ``numpy.random.RandomState``.
    """
    if random_state is None:
        return np.random.SeedSequence()
    if is_int(random_state):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0; got {random_state}")
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63)))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(2**31)))
    raise TypeError(
        "random_state must be None, an int, a numpy.random.Generator or "
        f"numpy.random.RandomState; got {type(random_state).__name__} {random_state!r}"
    )


@dataclass
class DaskBlocks:
    """Row blocks of a dask X and its aligned y."""

    x_blocks: list
    y_blocks: list | None
    lengths: list | None
    n_features: int
    feature_names: np.ndarray | None


def _known(chunks):
    return not any(math.isnan(c) for c in chunks)


def _feature_names(columns):
    names = list(columns)
    if names and all(isinstance(c, str) for c in names):
        return np.asarray(names, dtype=object)
    return None


def _check_frame_dtypes(X):
    bad = [str(c) for c, t in X.dtypes.items() if t.kind not in "biuf"]
    if bad:
        raise ValueError(
            f"X must have numeric columns only; columns {bad} are not numeric "
            f"(dtypes {[str(X.dtypes[c]) for c in X.columns if str(c) in bad]})"
        )


def _check_array_dtype(X, objects=False):
    """Raise ``ValueError`` for a dask array ``X`` that is not of real numbers.

    Complex, string and object values are never cast silently (a cast to float drops
    an imaginary part), at fit time or at predict time. ``objects``: the estimator
    takes string and object values too (:func:`~daskfuse._adapters.accepts_objects`).
    """
    if X.dtype.kind not in ("biufOUS" if objects else "biuf"):
        raise ValueError(f"X must be numeric; got a dask array of dtype {X.dtype}")


def _x_blocks(X, objects=False):
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(
                f"X must be 2-dimensional (n_samples, n_features); got a dask array with "
                f"{X.ndim} dimension(s), shape {X.shape}"
            )
        if math.isnan(X.shape[1]):
            raise ValueError("X has an unknown number of columns; call X.compute_chunk_sizes()")
        _check_array_dtype(X, objects)
        check_dense(X._meta, "X", blocks=True)
        if X.numblocks[1] > 1:
            # one partition = one row block with all of its columns
            X = X.rechunk({1: -1})
        lengths = list(X.chunks[0]) if _known(X.chunks[0]) else None
        return list(X.to_delayed().ravel()), lengths, int(X.shape[1]), None
    if isinstance(X, dd.DataFrame):
        if not objects:
            _check_frame_dtypes(X)
        return list(X.to_delayed()), None, len(X.columns), _feature_names(X.columns)
    raise TypeError(
        "X must be a numpy array, pandas DataFrame, dask array or dask DataFrame; "
        f"got {type(X).__module__}.{type(X).__name__}"
    )


def _y_blocks(y, x_lengths, n_x_blocks):
    if isinstance(y, dd.Series | dd.DataFrame):
        blocks = list(y.to_delayed())
        lengths = None
    elif isinstance(y, da.Array):
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1- or 2-dimensional; got a {y.ndim}-D dask array")
        if y.ndim == 2 and y.numblocks[1] > 1:
            y = y.rechunk({1: -1})
        lengths = list(y.chunks[0]) if _known(y.chunks[0]) else None
        if lengths is not None and x_lengths is not None and lengths != x_lengths:
            if sum(lengths) != sum(x_lengths):
                raise ValueError(
                    f"X has {sum(x_lengths)} rows but y has {sum(lengths)}: X and y must "
                    "have the same number of rows"
                )
            y = y.rechunk({0: tuple(x_lengths)})
            lengths = x_lengths
        blocks = list(y.to_delayed().ravel())
    elif isinstance(y, np.ndarray | list) or hasattr(y, "__array__"):
        y = np.asarray(y)
        if x_lengths is None:
            raise ValueError(
                "y is in memory but X is a dask collection of unknown chunk sizes, so y "
                "cannot be aligned with X's blocks; pass y as a dask collection built "
                "alongside X"
            )
        if len(y) != sum(x_lengths):
            raise ValueError(
                f"X has {sum(x_lengths)} rows but y has {len(y)}: X and y must have the "
                "same number of rows"
            )
        y = da.from_array(y, chunks=(tuple(x_lengths),) + y.shape[1:])
        return list(y.to_delayed().ravel())
    else:
        raise TypeError(f"y must be array-like or a dask collection; got {type(y).__name__}")
    if len(blocks) != n_x_blocks:
        raise ValueError(
            f"X has {n_x_blocks} row blocks but y has {len(blocks)}, and their chunk sizes "
            "are not both known, so they cannot be aligned; build X and y with the same "
            "row chunks (or call compute_chunk_sizes() on both)"
        )
    return blocks


def dask_blocks(X, y=None, objects=False):
    """Aligned row blocks of a dask ``X`` (and ``y``).

    ``objects``: the estimator takes string, categorical and object columns
    (:func:`~daskfuse._adapters.accepts_objects`); otherwise they are refused.

    Raises
    ------
    ValueError
        X is not 2-D, not numeric, or X and y cannot be aligned.
    TypeError
        X or y is of an unsupported type.
    """
    if isinstance(X, dd.DataFrame) and isinstance(y, dd.Series | dd.DataFrame):
        return _frame_blocks(X, y, objects)
    x_blocks, lengths, n_features, names = _x_blocks(X, objects)
    y_blocks = None if y is None else _y_blocks(y, lengths, len(x_blocks))
    return DaskBlocks(x_blocks, y_blocks, lengths, n_features, names)


_TARGET = "__daskfuse_target__"


def _frame_blocks(X, y, objects=False):
    """Row blocks of a dask DataFrame X and its dask y, split from one joined frame.

    dask's optimiser may partition ``ddf[features]`` and ``ddf[target]`` differently
    (it merges small parquet pieces by the size of the columns read), so X and y are
    joined first and every block is cut into X and y on the worker that holds it.
    """
    if not objects:
        _check_frame_dtypes(X)
    try:
        if isinstance(y, dd.Series):
            joined = X.assign(**{_TARGET: y})
            y_columns = _TARGET
        else:
            renamed = y.rename(columns={c: f"{_TARGET}{i}" for i, c in enumerate(y.columns)})
            joined = dd.concat([X, renamed], axis=1)
            y_columns = list(renamed.columns)
    except (ValueError, NotImplementedError) as exc:
        raise ValueError(
            f"X has {X.npartitions} partitions and y has {y.npartitions}, and they cannot be "
            f"aligned ({exc}); build X and y from one dask DataFrame"
        ) from exc
    blocks = joined.to_delayed()
    columns = list(X.columns)
    return DaskBlocks(
        [delayed(_select, pure=True)(b, columns) for b in blocks],
        [delayed(_select, pure=True)(b, y_columns) for b in blocks],
        None,
        len(columns),
        _feature_names(X.columns),
    )


def _select(frame, columns):
    return frame[columns]


def dask_to_array(X):
    """A dask array of ``X`` with one column chunk (dask DataFrame columns in order)."""
    if isinstance(X, dd.DataFrame):
        _check_frame_dtypes(X)
        return X.to_dask_array()
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(
                f"X must be 2-dimensional (n_samples, n_features); got a dask array with "
                f"{X.ndim} dimension(s)"
            )
        _check_array_dtype(X)
        check_dense(X._meta, "X", blocks=True)
        return X.rechunk({1: -1}) if X.numblocks[1] > 1 else X
    raise TypeError(f"X must be a dask array or dask DataFrame; got {type(X).__name__}")
