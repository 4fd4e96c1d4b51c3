"""Data distribution: how the training data are laid over partitions.

Horizontal partitioning (:class:`Rows`) gives every partition a subset of the rows
with all of the features. The strategies:

``"chunks"``
    one partition per row block of the dask input, as it is chunked; no data moves.
``"uniform"``
    ``n_partitions`` contiguous parts of (almost) equal size.
``"random"``
    rows shuffled with ``random_state`` and dealt out to ``n_partitions`` parts of
    (almost) equal size.
``"stratified"``
    like ``"random"``, but each class is dealt out separately, so that every
    partition keeps the label proportions of the whole data.
``"auto"``
    ``"chunks"`` for a dask input when no ``n_partitions`` is given, else
    ``"uniform"``.

For dask inputs, ``"uniform"``, ``"random"`` and ``"stratified"`` split every row
block on the worker that holds it (``daskfuse-split`` tasks) and each partition is
gathered from its pieces by its fit task: rows move between workers once, the client
never holds them.

Vertical partitioning (:class:`Columns`) gives every partition (a *column block*) a
subset of the features with all of the rows; :mod:`daskfuse.vertical` fits and fuses
the block models.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import dask
import numpy as np
from dask import delayed

from ._validation import check_int, is_int

__all__ = [
    "COLUMN_STRATEGIES",
    "STRATEGIES",
    "Columns",
    "Rows",
    "auto_n_partitions",
    "label_skewed_order",
]

STRATEGIES = ("auto", "chunks", "uniform", "random", "stratified")

#: ``n_partitions="auto"`` never makes partitions smaller than this many rows.
MIN_ROWS_PER_AUTO_PARTITION = 50

#: An in-memory input travels in data nodes that each hold the rows of one or more
#: consecutive partitions, grouped until a node holds this many bytes of X, but
#: into at least ``MIN_DATA_NODES`` nodes (where there are that many partitions):
#: a node costs the scheduler about as much as a task, so that 1,000 small
#: partitions do not make 2,000 nodes, while large partitions keep one node each and
#: the nodes still spread over the workers.
MIN_DATA_NODE_BYTES = 4 << 20
MIN_DATA_NODES = 64


class Rows:
    """Horizontal partitioning: split the rows, keep every feature in each part.

    Parameters
    ----------
    n_partitions : int, "auto" or None, default=None
        Number of partitions. ``None`` keeps the row blocks of a dask input and
        means ``"auto"`` for an in-memory input. ``"auto"`` uses one partition per
        thread of the active scheduler (the workers of a distributed ``Client``),
        never making partitions of fewer than 50 rows.
    strategy : {"auto", "chunks", "uniform", "random", "stratified"}, default="auto"
        How rows are assigned to partitions; see the module documentation.

    Examples
    --------
    >>> from daskfuse.partition import Rows
    >>> Rows(8, strategy="stratified")
    Rows(n_partitions=8, strategy='stratified')
    """

    def __init__(self, n_partitions=None, strategy="auto"):
        self.n_partitions = n_partitions
        self.strategy = strategy
        self.validate()

    def validate(self):
        """Check the parameters; raise ``ValueError``/``TypeError`` naming the bad one."""
        n = self.n_partitions
        if not (
            n is None
            or (isinstance(n, str) and n == "auto")
            or is_int(n)
        ):
            raise TypeError(
                f"n_partitions must be a positive int, 'auto' or None; got {n!r}"
            )
        if is_int(n) and n < 1:
            raise ValueError(f"n_partitions must be >= 1; got {n}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(map(repr, STRATEGIES))}; "
                f"got {self.strategy!r}"
            )
        return self

    def __repr__(self):
        return f"Rows(n_partitions={self.n_partitions!r}, strategy={self.strategy!r})"

    def __eq__(self, other):
        return isinstance(other, Rows) and (self.n_partitions, self.strategy) == (
            other.n_partitions,
            other.strategy,
        )

    def __hash__(self):
        return hash((Rows, self.n_partitions, self.strategy))

    def __dask_tokenize__(self):
        return ("daskfuse.Rows", self.n_partitions, self.strategy)


COLUMN_STRATEGIES = ("auto", "chunks", "groups", "uniform", "random", "dtype", "correlation")


class Columns:
    """Vertical partitioning: split the features, keep every row in each part.

    Each part (a *column block*) is fitted by its own tasks on the columns it holds,
    on all rows; :mod:`daskfuse.vertical` fuses the block models (stacking or
    backfitting). The strategies:

    ``"chunks"``
        one block per column chunk of a dask array, as it is chunked; no data moves.
    ``"groups"``
        the explicit ``groups``: lists of column indices or, for DataFrames, column
        names. Every column must be in exactly one group.
    ``"uniform"``
        ``n_blocks`` contiguous runs of columns of (almost) equal size.
    ``"random"``
        columns shuffled with ``random_state`` and dealt out to ``n_blocks`` blocks.
    ``"dtype"``
        one block per column dtype, in order of first appearance (DataFrames; an
        array has one dtype, so one block).
    ``"correlation"``
        feature-based distribution: hierarchical clustering (average linkage) of the
        columns on ``1 - |correlation|`` cut into at most ``n_blocks`` clusters, so
        that correlated features share a block. The correlations come from one pass
        over the data.
    ``"auto"``
        ``"groups"`` when ``groups`` is given, else ``"chunks"`` for a dask array
        with several column chunks and no ``n_blocks``, else ``"uniform"``.

    Parameters
    ----------
    groups : list of list of int or str, or None, default=None
        The column blocks for ``strategy="groups"``.
    n_blocks : int, "auto" or None, default=None
        Number of blocks (``"uniform"``, ``"random"``, ``"correlation"``). None and
        ``"auto"`` mean one block per thread of the active scheduler, at most one
        per column. With ``"chunks"``, ``"groups"`` and ``"dtype"`` the data decide
        the count; a given ``n_blocks`` must agree with it.
    strategy : {"auto", "chunks", "groups", "uniform", "random", "dtype", \
"correlation"}, default="auto"
        How columns are assigned to blocks; see above.
    random_state : int or None, default=None
        Seeds the column shuffle of ``"random"``.

    Examples
    --------
    >>> from daskfuse.partition import Columns
    >>> Columns(groups=[[0, 1], [2]])
    Columns(groups=[[0, 1], [2]], n_blocks=None, strategy='auto', random_state=None)
    >>> Columns(n_blocks=3, strategy="correlation").n_blocks
    3
    """

    def __init__(self, groups=None, n_blocks=None, strategy="auto", random_state=None):
        self.groups = groups
        self.n_blocks = n_blocks
        self.strategy = strategy
        self.random_state = random_state
        self.validate()

    def validate(self):
        """Check the parameters; raise ``ValueError``/``TypeError`` naming the bad one."""
        n = self.n_blocks
        if not (
            n is None
            or (isinstance(n, str) and n == "auto")
            or is_int(n)
        ):
            raise TypeError(
                f"Columns(n_blocks=...) must be a positive int, 'auto' or None; got {n!r}"
            )
        if is_int(n) and n < 1:
            raise ValueError(f"Columns(n_blocks=...) must be >= 1; got {n}")
        if self.strategy not in COLUMN_STRATEGIES:
            raise ValueError(
                f"Columns(strategy=...) must be one of "
                f"{', '.join(map(repr, COLUMN_STRATEGIES))}; got {self.strategy!r}"
            )
        rs = self.random_state
        if rs is not None and not is_int(rs):
            raise TypeError(f"Columns(random_state=...) must be None or an int; got {rs!r}")
        if rs is not None and rs < 0:
            raise ValueError(f"Columns(random_state=...) must be >= 0; got {rs}")
        if self.groups is None:
            if self.strategy == "groups":
                raise ValueError(
                    "Columns(strategy='groups') needs groups: a list of lists of column "
                    "indices or names; got groups=None"
                )
            return self
        if self.strategy not in ("auto", "groups"):
            raise ValueError(
                f"Columns(groups=...) is only used by strategy='groups' (or 'auto'); got "
                f"strategy={self.strategy!r} with groups"
            )
        self._check_groups()
        return self

    def _check_groups(self):
        groups = self.groups
        if isinstance(groups, str | bytes) or not isinstance(groups, list | tuple) or not groups:
            raise TypeError(
                "Columns(groups=...) must be a non-empty list of lists of column indices "
                f"or names; got {groups!r}"
            )
        seen = {}
        kinds = set()
        for b, group in enumerate(groups):
            if isinstance(group, str | bytes) or not hasattr(group, "__iter__"):
                raise TypeError(
                    f"Columns(groups=...): groups[{b}] must be a list of column indices or "
                    f"names; got {group!r}"
                )
            group = list(group)
            if not group:
                raise ValueError(f"Columns(groups=...): groups[{b}] is empty")
            for col in group:
                if is_int(col):
                    kinds.add("index")
                    if col < 0:
                        raise ValueError(
                            f"Columns(groups=...): groups[{b}] holds the negative column "
                            f"index {col}; use indices 0 .. n_features - 1"
                        )
                    col = int(col)
                elif isinstance(col, str):
                    kinds.add("name")
                else:
                    raise TypeError(
                        f"Columns(groups=...): groups[{b}] holds {col!r} "
                        f"({type(col).__name__}); expected column indices (int) or names (str)"
                    )
                if col in seen:
                    raise ValueError(
                        f"Columns(groups=...): column {col!r} is in groups[{seen[col]}] and "
                        f"groups[{b}]; every column belongs to one group"
                    )
                seen[col] = b
        if len(kinds) > 1:
            raise TypeError(
                "Columns(groups=...) mixes column indices and names; use one or the other"
            )

    def _key(self):
        groups = None if self.groups is None else tuple(
            tuple(int(c) if is_int(c) else c for c in g)
            for g in self.groups
        )
        return (groups, self.n_blocks, self.strategy, self.random_state)

    def __repr__(self):
        groups = None if self.groups is None else [list(g) for g in self._key()[0]]
        return (
            f"Columns(groups={groups!r}, n_blocks={self.n_blocks!r}, "
            f"strategy={self.strategy!r}, random_state={self.random_state!r})"
        )

    def __eq__(self, other):
        return isinstance(other, Columns) and self._key() == other._key()

    def __hash__(self):
        return hash((Columns, self._key()))

    def __dask_tokenize__(self):
        return ("daskfuse.Columns", self._key())


@dataclass
class RowPlan:
    """The partitions of one fit: for each, the ``(X, y)`` pieces that make it up."""

    partitions: list
    strategy: str
    n_rows: int | None


def active_client():
    """The ``distributed`` client that ``dask.compute`` uses now, or None."""
    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    return client if client is not None and hasattr(client, "nthreads") else None


def worker_threads():
    """``{worker address: threads}`` of the active ``distributed`` cluster, or None."""
    client = active_client()
    return None if client is None else client.nthreads()


def cluster_threads():
    """Threads of the active scheduler: the workers of a ``Client`` if one is active."""
    threads = sum((worker_threads() or {}).values())
    if threads:
        return threads
    return int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT)


def auto_n_partitions(n_rows=None):
    """The number of partitions that ``n_partitions="auto"`` means here and now.

    Parameters
    ----------
    n_rows : int or None
        Rows of the data when known; caps the count so that no partition gets
        fewer than ``MIN_ROWS_PER_AUTO_PARTITION`` rows.
    """
    n = cluster_threads()
    if n_rows is not None:
        n = min(n, n_rows // MIN_ROWS_PER_AUTO_PARTITION)
    return max(1, n)


def assign_rows(strategy, n, y, n_partitions, rng, offset=0, total=None, start=None):
    """Partition index of every row of one block.

    Parameters
    ----------
    strategy : {"uniform", "random", "stratified"}
    n : int
        Rows in the block.
    y : ndarray of shape (n,) or None
        The block's labels (``"stratified"`` only).
    n_partitions : int
    rng : numpy.random.Generator
    offset, total : int
        Position of the block's first row and number of rows of the whole data
        (``"uniform"``; ``offset`` also for ``"random"`` with ``start``).
    start : int or None
        ``"random"``: where the dealing of the whole data starts. Given (with the
        block's ``offset``), the blocks deal their shuffled rows on from one another,
        round-robin over all rows, so that every partition gets its share to within
        one row however small the blocks (1-row blocks included). None: the block
        deals from a random partition of its own (block lengths unknown).
    """
    if strategy == "uniform":
        return ((offset + np.arange(n)) * n_partitions) // total
    ids = np.empty(n, dtype=np.intp)
    if strategy == "random":
        groups = [np.arange(n)]
    else:
        _, inverse = np.unique(np.asarray(y), return_inverse=True)
        groups = row_groups(inverse, inverse.max(initial=-1) + 1)
    if strategy == "random" and start is not None:
        ids[rng.permutation(n)] = (offset + start + np.arange(n)) % n_partitions
        return ids
    for rows in groups:
        dealt = rng.permutation(rows)
        ids[dealt] = (np.arange(len(dealt)) + rng.integers(n_partitions)) % n_partitions
    return ids


def split_block(X, y, strategy, n_partitions, seed, offset, total, start=None, weights=None):
    """Split one row block into ``n_partitions`` pieces (a ``daskfuse-split`` task):
    ``(X, y)`` pairs, or ``(X, y, weights)`` triples with the block's sample weights."""
    ids = assign_rows(
        strategy, len(X), y, n_partitions, np.random.default_rng(seed), offset, total, start
    )
    take = _take_rows
    if weights is not None:
        return [
            (take(X, idx), take(y, idx), take(weights, idx))
            for idx in row_groups(ids, n_partitions)
        ]
    return [(take(X, idx), take(y, idx)) for idx in row_groups(ids, n_partitions)]


def row_groups(ids, n_groups):
    """The rows (ascending) of each group ``0 .. n_groups - 1`` of ``ids``.

    One stable sort, where a scan per group (``np.flatnonzero(ids == j)``) costs
    ``n_groups`` passes over the rows.
    """
    ids = np.asarray(ids)
    order = np.argsort(ids, kind="stable")
    return np.split(order, np.cumsum(np.bincount(ids, minlength=n_groups))[:-1])


def _take_rows(data, idx):
    if data is None:
        return None
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        # consecutive rows (uniform partitions): a slice, not a copy
        rows = slice(int(idx[0]), int(idx[-1]) + 1)
        return data.iloc[rows] if hasattr(data, "iloc") else data[rows]
    return data.iloc[idx] if hasattr(data, "iloc") else data[idx]


def _check_labels(strategy, y):
    if strategy == "stratified" and y is None:
        raise ValueError("partition strategy 'stratified' needs labels y; got y=None")


def _seeds(seed_sequence, n):
    return [int(s.generate_state(1)[0]) for s in seed_sequence.spawn(n)]


def resolve_strategy(rows, is_dask):
    if rows.strategy != "auto":
        return rows.strategy
    return "chunks" if is_dask and rows.n_partitions is None else "uniform"


def _resolve_count(rows, n_rows):
    if is_int(rows.n_partitions):
        return int(rows.n_partitions)
    return auto_n_partitions(n_rows)


def plan_in_memory(X, y, rows, seed_sequence, data_prefix):
    """Partitions of in-memory ``X`` (ndarray) and ``y``: assigned on the client."""
    strategy, groups = assign_in_memory(X, y, rows, seed_sequence)
    return plan_groups(X, y, strategy, groups, data_prefix)


def assign_in_memory(X, y, rows, seed_sequence):
    """``(strategy, groups)``: the rows of in-memory ``X`` that each partition takes.

    ``seed_sequence`` is spawned once: call this once per fit, then
    :func:`plan_groups`.
    """
    strategy = resolve_strategy(rows, is_dask=False)
    _check_labels(strategy, y)
    if strategy == "chunks":
        raise ValueError(
            "partition strategy 'chunks' needs a chunked (dask) input; got an in-memory "
            f"{type(X).__name__}: use 'uniform', 'random' or 'stratified'"
        )
    n_rows = len(X)
    n = _resolve_count(rows, n_rows)
    check_row_count(n, n_rows)
    rng = np.random.default_rng(seed_sequence.spawn(1)[0])
    ids = assign_rows(strategy, n_rows, y, n, rng, 0, n_rows)
    groups = row_groups(ids, n)
    for j, idx in enumerate(groups):
        if len(idx) == 0:
            raise ValueError(
                f"partition {j} would be empty with strategy={strategy!r} and "
                f"n_partitions={n}; use fewer partitions"
            )
    return strategy, groups


def plan_groups(X, y, strategy, groups, data_prefix, sample_weight=None):
    """The :class:`RowPlan` of in-memory ``X``, ``y`` (and ``sample_weight``) cut into
    ``groups`` of rows."""
    n_rows = len(X)
    partitions = []
    nbytes = X.memory_usage(deep=False).sum() if hasattr(X, "memory_usage") else X.nbytes
    for node, members in enumerate(_data_nodes(groups, int(nbytes) // max(n_rows, 1))):
        # one data node for X and one for y (and the weights), holding the rows of
        # consecutive partitions; each partition's fit task slices its own rows out
        idx = groups[members[0]] if len(members) == 1 else np.concatenate(
            [groups[j] for j in members]
        )
        data = (X, y) if sample_weight is None else (X, y, sample_weight)
        nodes = tuple(
            None
            if d is None
            else delayed(_take_rows(d, idx), name=(data_prefix, node, k), traverse=False)
            for k, d in enumerate(data)
        )
        if len(members) == 1:
            partitions.append([nodes])
            continue
        start = 0
        for j in members:
            stop = start + len(groups[j])
            partitions.append([(*nodes, slice(start, stop))])
            start = stop
    return RowPlan(partitions, strategy, n_rows)


def _data_nodes(groups, row_bytes):
    """Consecutive partitions grouped into data nodes (see ``MIN_DATA_NODE_BYTES``)."""
    most = -(-len(groups) // MIN_DATA_NODES)
    nodes, current, size = [], [], 0
    for j, idx in enumerate(groups):
        current.append(j)
        size += len(idx) * row_bytes
        if size >= MIN_DATA_NODE_BYTES or len(current) == most:
            nodes.append(current)
            current, size = [], 0
    if current:
        nodes.append(current)
    return nodes


def check_row_count(n_partitions, n_rows):
    """Raise ``ValueError`` naming both counts when there are fewer rows than partitions."""
    if n_partitions > n_rows:
        raise ValueError(
            f"n_partitions={n_partitions} is larger than the number of rows ({n_rows}): "
            "every partition needs at least one row"
        )


def count_rows(x_blocks):
    """The number of rows of a dask input's row blocks (one pass over the blocks)."""
    return int(sum(_block_lengths(x_blocks, None)))


def _block_lengths(x_blocks, known):
    if known is not None:
        return list(known)
    return list(dask.compute(*[delayed(len)(b) for b in x_blocks]))


def plan_blocks(x_blocks, y_blocks, lengths, rows, seed_sequence, names, w_blocks=None):
    """Partitions of a dask input given as matching lists of row blocks.

    Parameters
    ----------
    x_blocks, y_blocks : list of Delayed
        The row blocks of X and y, aligned block by block.
    lengths : list of int or None
        Rows per block, or None when unknown (they are computed if needed).
    w_blocks : list of Delayed or None
        The row blocks of the sample weights, aligned with X's; every piece then
        carries its rows' weights.
    """
    strategy = resolve_strategy(rows, is_dask=True)
    _check_labels(strategy, y_blocks)
    if y_blocks is None:
        y_blocks = [None] * len(x_blocks)
    n_blocks = len(x_blocks)
    if strategy == "chunks":
        if is_int(rows.n_partitions) and rows.n_partitions != n_blocks:
            raise ValueError(
                f"n_partitions={rows.n_partitions} does not match the {n_blocks} row "
                "blocks of X with strategy='chunks'; rechunk X or use 'uniform'"
            )
        n_rows = None if lengths is None else int(sum(lengths))
        if w_blocks is not None:
            blocks = zip(x_blocks, y_blocks, w_blocks)
            return RowPlan([[(xb, yb, wb)] for xb, yb, wb in blocks], strategy, n_rows)
        return RowPlan([[(xb, yb)] for xb, yb in zip(x_blocks, y_blocks)], strategy, n_rows)

    # "random" deals all rows round-robin from one start, so that unknown block
    # lengths give the partitions that known ones do (never an empty one while there
    # are at least as many rows as partitions): they are counted first, one pass
    if strategy in ("uniform", "random") or rows.n_partitions in (None, "auto"):
        lengths = _block_lengths(x_blocks, lengths)
    n_rows = None if lengths is None else int(sum(lengths))
    n = _resolve_count(rows, n_rows)
    if n_rows is not None:
        check_row_count(n, n_rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if lengths else [0] * n_blocks
    seeds = _seeds(seed_sequence, n_blocks)
    start = None
    if strategy == "random" and lengths is not None:
        start = int(np.random.default_rng(seed_sequence.spawn(1)[0]).integers(n))
    pieces = [[] for _ in range(n)]
    for i, (xb, yb) in enumerate(zip(x_blocks, y_blocks)):
        weights = () if w_blocks is None else (w_blocks[i],)
        split = delayed(split_block, pure=True, nout=n)(
            xb, yb, strategy, n, seeds[i], int(offsets[i]), n_rows, start, *weights,
            dask_key_name=(names["split"], i),
        )
        for j in range(n):
            pieces[j].append(
                delayed(operator.getitem, pure=True)(
                    split, j, dask_key_name=(names["piece"], i, j)
                )
            )
    return RowPlan(pieces, strategy, n_rows)


def label_skewed_order(y, n_partitions, dominance=0.8, random_state=None):
    """A row order that gives each contiguous part one dominant class (non-IID data).

    Cut into ``n_partitions`` equal contiguous parts (``partition="uniform"``), part
    ``j`` holds a fraction ``dominance`` of rows of class ``classes[j % n_classes]``
    and shares the rest equally among the other classes. Use it to study fusion
    under label skew, where one-shot averaging is at its weakest.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.
    n_partitions : int
        Number of parts.
    dominance : float, default=0.8
        Fraction of each part taken by its dominant class, in [1 / n_classes, 1].
    random_state : int, numpy Generator or None, default=None
        Seeds the choice of rows within each class.

    Returns
    -------
    order : ndarray of int
        Row indices, each used at most once. Every part gets the same number of
        rows, the largest for which no class runs out; the rows left over are left
        out (so the class balance of the result differs from that of ``y``).

    Examples
    --------
    >>> import numpy as np
    >>> from daskfuse.partition import label_skewed_order
    >>> y = np.repeat([0, 1], 50)
    >>> order = label_skewed_order(y, 2, dominance=0.8, random_state=0)
    >>> [int((y[part] == 0).sum()) for part in np.split(order, 2)]
    [40, 10]
    """
    y = np.asarray(y)
    classes = np.unique(y)
    n_partitions = check_int(n_partitions, "n_partitions", low=1)
    if not 1.0 / len(classes) <= dominance <= 1.0:
        raise ValueError(
            f"dominance must be in [1/{len(classes)}, 1] for {len(classes)} classes; "
            f"got {dominance!r}"
        )
    rng = np.random.default_rng(random_state)
    pools = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in classes}
    k = len(classes)
    mains = [classes[j % k] for j in range(n_partitions)]
    # the largest part size for which no class runs out of rows
    other = (1 - dominance) / max(k - 1, 1)
    share = {
        c: mains.count(c) * dominance + (n_partitions - mains.count(c)) * other
        for c in classes
    }
    size = int(min(len(pools[c]) / share[c] for c in classes if share[c] > 0))
    n_main = int(round(dominance * size))
    n_other = (size - n_main) // max(k - 1, 1)
    order = []
    for main in mains:
        for c in classes:
            take = n_main if c == main else n_other
            order += pools[c][:take]
            pools[c] = pools[c][take:]
    return np.asarray(order, dtype=np.intp)
