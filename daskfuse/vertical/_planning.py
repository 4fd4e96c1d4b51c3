"""Planning a column fit: the blocks' columns and the dask pieces that hold them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed

from .._graph import (
    fit_prefix,
)
from .._inputs import (
    _y_blocks,
    aligned,
    dask_blocks,
    float_array,
    is_dask_input,
)
from .._validation import is_int
from ..partition import cluster_threads


@dataclass
class ColumnPlan:
    """The column blocks of one fit and the dask pieces of their raw columns.

    Attributes
    ----------
    groups : list of ndarray of int
        The sorted column indices of each block.
    pieces : list of list of Delayed
        For each block, its row pieces (all rows, only its columns), in row order.
    target : Delayed
        The targets, one piece (``("daskfuse-target-<token>", 0)``).
    strategy : str
        The strategy that made the blocks.
    keys : dict
        Key prefix of each step.
    """

    groups: list
    pieces: list
    target: Any
    strategy: str
    keys: dict = field(default_factory=dict)


#: the steps of a column fit
COLUMN_STEPS = (
    "data",
    "columns",
    "target",
    "fit",
    "block",
    "step",
    "coef",
    "log",
    "finalize",
    "margin",
    "sum",
    "line",
    "grad",
    "root",
)


def _column_dtypes(X, n_features):
    if isinstance(X, pd.DataFrame | dd.DataFrame):
        return [str(t) for t in X.dtypes]
    dtype = X.dtype if hasattr(X, "dtype") else np.asarray(X).dtype
    return [str(dtype)] * n_features


def _moments(block):
    """Row count, column sums and cross-products of one row block (correlation planning)."""
    a = float_array(block)
    return len(a), a.sum(axis=0), a.T @ a


def _correlation(X):
    """Column correlations of ``X`` from one pass of moments (on the workers for dask)."""
    if is_dask_input(X):
        parts = dask.compute(*[delayed(_moments, pure=True)(b) for b in dask_blocks(X).x_blocks])
    else:
        parts = [_moments(X)]
    n = sum(p[0] for p in parts)
    s = sum(p[1] for p in parts)
    cross = sum(p[2] for p in parts)
    mean = s / max(n, 1)
    cov = cross / max(n, 1) - np.outer(mean, mean)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[~np.isfinite(corr)] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def _cluster_columns(corr, n_blocks):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    p = len(corr)
    if p == 1 or n_blocks == 1:
        return np.zeros(p, dtype=int)
    dist = squareform(1.0 - np.abs(corr), checks=False)
    labels = fcluster(linkage(dist, method="average"), t=n_blocks, criterion="maxclust")
    return labels


def _groups_from_labels(labels):
    labels = np.asarray(labels)
    order = []
    for lab in labels:
        if lab not in order:
            order.append(lab)
    return [np.flatnonzero(labels == lab) for lab in order]


def _count(columns, n_features, what):
    n = columns.n_blocks
    if is_int(n):
        if n > n_features:
            raise ValueError(
                f"Columns(n_blocks={n}) is larger than the number of columns "
                f"({n_features}) with strategy={what!r}: every block needs a column"
            )
        return int(n)
    return max(1, min(cluster_threads(), n_features))


def _check_count(columns, n, what):
    if is_int(columns.n_blocks) and columns.n_blocks != n:
        raise ValueError(
            f"Columns(n_blocks={columns.n_blocks}) contradicts strategy={what!r}, which "
            f"makes {n} block(s); leave n_blocks out"
        )


def _explicit_groups(columns, n_features, names):
    groups = []
    for b, group in enumerate(columns.groups):
        group = list(group)
        if isinstance(group[0], str):
            if names is None:
                raise ValueError(
                    f"Columns(groups=...): groups[{b}] names columns ({group[:3]!r} ...) but "
                    "X has no column names (an array); use column indices"
                )
            position = {n: i for i, n in enumerate(names)}
            unknown = [c for c in group if c not in position]
            if unknown:
                raise ValueError(
                    f"Columns(groups=...): groups[{b}] names columns {unknown} that X does "
                    f"not have; X's columns: {list(names)}"
                )
            idx = [position[c] for c in group]
        else:
            idx = [int(c) for c in group]
            bad = [c for c in idx if c >= n_features]
            if bad:
                raise ValueError(
                    f"Columns(groups=...): groups[{b}] holds column index(es) {bad}, but X "
                    f"has {n_features} columns (0 .. {n_features - 1})"
                )
        groups.append(np.asarray(sorted(idx), dtype=np.intp))
    covered = np.concatenate(groups)
    missing = np.setdiff1d(np.arange(n_features), covered)
    if len(missing):
        shown = missing.tolist() if names is None else [names[i] for i in missing]
        raise ValueError(
            f"Columns(groups=...) leaves column(s) {shown} in no group; every column of X "
            "must be in exactly one group (drop unused columns from X first)"
        )
    return groups


def resolve_strategy(columns, X):
    """The strategy ``columns`` means for ``X`` (``"auto"`` resolved)."""
    if columns.strategy != "auto":
        return columns.strategy
    if columns.groups is not None:
        return "groups"
    if isinstance(X, da.Array) and X.ndim == 2 and X.numblocks[1] > 1 and columns.n_blocks is None:
        return "chunks"
    return "uniform"


def column_groups(columns, X, n_features, names, corr_data=None):
    """The column indices of every block, sorted within blocks, blocks by first column.

    Parameters
    ----------
    columns : Columns
    X : array-like or dask collection
        The input as given (its dtypes, column chunks and, for ``"correlation"``,
        its values are read).
    n_features : int
    names : sequence of str or None
        Column names, where ``X`` has them.
    corr_data : array-like or None
        What to compute correlations on (default ``X``).

    Returns
    -------
    groups : list of ndarray of int
    strategy : str
    """
    strategy = resolve_strategy(columns, X)
    if strategy == "groups":
        groups = _explicit_groups(columns, n_features, names)
        _check_count(columns, len(groups), strategy)
    elif strategy == "chunks":
        if not isinstance(X, da.Array):
            raise ValueError(
                "Columns(strategy='chunks') needs a dask array chunked along its columns; "
                f"got {type(X).__module__}.{type(X).__name__}: use 'uniform', 'groups', "
                "'dtype' or 'correlation'"
            )
        edges = np.cumsum((0,) + tuple(X.chunks[1]))
        groups = [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]
        _check_count(columns, len(groups), strategy)
    elif strategy == "dtype":
        groups = _groups_from_labels(_column_dtypes(X, n_features))
        _check_count(columns, len(groups), strategy)
    elif strategy in ("uniform", "random"):
        n = _count(columns, n_features, strategy)
        order = np.arange(n_features)
        if strategy == "random":
            order = np.random.default_rng(columns.random_state).permutation(n_features)
        groups = [np.sort(g) for g in np.array_split(order, n)]
    else:  # correlation
        n = _count(columns, n_features, strategy)
        corr = _correlation(X if corr_data is None else corr_data)
        groups = _groups_from_labels(_cluster_columns(corr, n))
    groups = sorted((np.asarray(g, dtype=np.intp) for g in groups), key=lambda g: g[0])
    return groups, strategy


def _piece(value):
    return value


def _select_columns(index, *chunks):
    """Block columns of one row chunk: ``index`` into the chunks side by side."""
    parts = []
    for chunk in chunks:
        if isinstance(chunk, pd.DataFrame | pd.Series):
            # (a nullable column's pd.NA as NaN: float() does not take pd.NA)
            chunk = chunk.to_numpy(na_value=np.nan)
        parts.append(np.asarray(chunk))
    whole = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return whole[:, index]


def _concat_target(*pieces):
    ys = [
        p.to_numpy() if isinstance(p, pd.Series | pd.DataFrame) else np.asarray(p) for p in pieces
    ]
    return aligned(ys[0]) if len(ys) == 1 else np.concatenate(ys, axis=0)


def _dask_array_pieces(X, groups, keys):
    grid = X.to_delayed()
    edges = np.cumsum((0,) + tuple(X.chunks[1]))
    pieces = []
    for b, cols in enumerate(groups):
        js = np.unique(np.searchsorted(edges, cols, side="right") - 1)
        whole = len(js) == 1 and np.array_equal(cols, np.arange(edges[js[0]], edges[js[0] + 1]))
        if whole:
            # the block is a column chunk: its pieces are the array's own chunks
            pieces.append(list(grid[:, js[0]]))
            continue
        local = np.concatenate([np.arange(edges[j], edges[j + 1]) for j in js]).searchsorted(cols)
        pieces.append(
            [
                delayed(_select_columns, pure=True)(
                    local, *grid[i, js], dask_key_name=(keys["columns"], i, b)
                )
                for i in range(grid.shape[0])
            ]
        )
    return pieces, (list(X.chunks[0]) if not np.isnan(X.chunks[0]).any() else None)


def plan_columns(X, y, groups, strategy, token):
    """The pieces of every block's raw columns (and the targets) as dask objects.

    Parameters
    ----------
    X : ndarray, dask array or dask DataFrame
        In-memory inputs are validated arrays.
    y : ndarray, dask collection
    groups : list of ndarray of int
    strategy : str
    token : str

    Returns
    -------
    ColumnPlan
    """
    keys = fit_prefix(token, COLUMN_STEPS)
    if isinstance(X, da.Array):
        pieces, lengths = _dask_array_pieces(X, groups, keys)
        y_pieces = _y_blocks(y, lengths, len(pieces[0]))
    elif isinstance(X, dd.DataFrame):
        blocks = dask_blocks(X, y)
        pieces = [
            [
                delayed(_select_columns, pure=True)(cols, xb, dask_key_name=(keys["columns"], i, b))
                for i, xb in enumerate(blocks.x_blocks)
            ]
            for b, cols in enumerate(groups)
        ]
        y_pieces = blocks.y_blocks
    else:
        pieces = [
            [
                delayed(_piece, pure=True)(
                    np.ascontiguousarray(X[:, cols]), dask_key_name=(keys["data"], b)
                )
            ]
            for b, cols in enumerate(groups)
        ]
        y_pieces = [y]
    target = delayed(_concat_target, pure=True)(*y_pieces, dask_key_name=(keys["target"], 0))
    return ColumnPlan(groups, pieces, target, strategy, keys)
