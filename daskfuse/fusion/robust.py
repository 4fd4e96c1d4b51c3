"""Robust parameter fusion: :class:`Median`, :class:`TrimmedMean` and :class:`Krum`.

These fusers serve the same estimators as parameter averaging (the linear models and
the MLPs) but resist partitions whose models are corrupted (flipped labels, badly
scaled features, degenerate label distributions): up to a few bad partitions move the
fused parameters little, where they can move an average anywhere.

A median, a trimmed mean or Krum's choice is not decomposable into partial sums, so
the summary keeps *every* partition's parameters and weight: ``combine`` only
concatenates, and the root (``finalize``) computes the robust statistic. The summary
therefore grows linearly with the number of partitions (one parameter set each),
unlike the fixed-size summary of :class:`~daskfuse.fusion.Weighted`.

Classifier rows are aligned by class label on the union of the partitions' classes; a
class row that a partition never saw is missing (NaN) there and is left out of that
coordinate's statistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce

import numpy as np

from .._adapters import adapter_for
from .._validation import check_int, check_real
from ..exceptions import FusionError
from .average import _aligned, _ParameterAveraging

__all__ = ["Krum", "Median", "PartitionParameters", "TrimmedMean"]


@dataclass
class PartitionParameters:
    """Every partition's parameters: the summary of the robust fusers.

    Attributes
    ----------
    parts : list of ParameterSum
        One entry per partition, in partition order: its classes, its (unscaled)
        parameters in ``sums`` and its weight in ``weights`` (per class row for
        classifiers whose rows are aligned, a scalar otherwise). The list grows with
        the number of partitions.
    indices : list of int
        The partition number of each entry.
    report_weight : float or None
        A leaf's partition weight, for the partition report; None once combined.
    """

    parts: list = field(default_factory=list)
    indices: list = field(default_factory=list)
    report_weight: float | None = None


class _RobustFusion(_ParameterAveraging):
    """Keeps every partition's parameters; the root computes a robust statistic."""

    #: whether partitions are weighted by their rows (else each counts once)
    weighted = False

    def partition_weight(self, info):
        return info["n_rows"] if self.weighted else 1.0

    def _given_weights_reason(self):
        if self.weighted:
            return None
        weighted = type(self)(**{**self._params(), "weighted": True})
        return f"{self!r} counts every model once; use {weighted!r} to weigh them"

    def _partial_fit_reason(self):
        return (
            f"{self!r} takes a robust statistic over the partitions of one fit, which is "
            "not a running merge that later partitions join (a batch of new partitions "
            "would shift which ones count as outliers); refit on all rows"
        )

    def summarize(self, estimator, X, y, info):
        part = self._parameters(estimator, info, scaled=False)
        return PartitionParameters([part], [info["index"]], part.report_weight)

    def combine(self, summaries):
        # concatenation, kept in partition order so that the grouping of the tree
        # (split_every) cannot change the result
        pairs = sorted(
            ((i, p) for s in summaries for i, p in zip(s.indices, s.parts)),
            key=lambda pair: pair[0],
        )
        return PartitionParameters([p for _, p in pairs], [i for i, _ in pairs])

    def _classes(self, parts):
        first = parts[0]
        if first.classes is None:
            return None
        if first.weights.ndim == 0:
            for p in parts[1:]:
                if not np.array_equal(p.classes, first.classes):
                    raise FusionError(
                        f"{self!r}: partitions saw different classes ({list(first.classes)} "
                        f"and {list(p.classes)}); fusing these models needs every partition "
                        "to see every class: use partition='stratified' or fusion='vote'"
                    )
            return first.classes
        return reduce(np.union1d, [p.classes for p in parts])

    def _stacked(self, summary):
        """Parameters stacked over partitions, NaN where a class row is missing.

        Returns
        -------
        classes : ndarray or None
        stacks : dict of str to ndarray of shape (n_partitions, *shape)
        weights : dict of str to ndarray of shape (n_partitions, *shape)
            Each coordinate's weight, 0 where it is missing.
        """
        parts = summary.parts
        if not parts:
            raise FusionError(f"{self!r}: no partition models to fuse")
        classes = self._classes(parts)
        aligned = [_aligned(p, classes) for p in parts]
        shapes = {k: v.shape for k, v in aligned[0][0].items()}
        for sums, _ in aligned[1:]:
            if {k: v.shape for k, v in sums.items()} != shapes:
                raise FusionError(
                    f"{self!r}: the partition models have differently shaped parameters "
                    "and cannot be fused"
                )
        stacks, weights = {}, {}
        for name, shape in shapes.items():
            values = np.stack([a[0][name] for a in aligned])
            w = np.stack([_spread(a[1], shape) for a in aligned])
            if classes is not None and parts[0].weights.ndim:
                present = np.stack(
                    [
                        np.isin(classes, p.classes).reshape(
                            (len(classes),) + (1,) * (len(shape) - 1)
                        )
                        for p in parts
                    ]
                )
                present = np.broadcast_to(present, values.shape)
                values = np.where(present, values, np.nan)
                w = np.where(present, w, 0.0)
            stacks[name], weights[name] = values, np.array(w)
        return classes, stacks, weights

    def aggregate(self, values, weights):
        """The robust statistic of ``values`` over axis 0 (NaN = missing)."""
        raise NotImplementedError

    def _check_weights(self, weights):
        for w in weights.values():
            if np.any(w.sum(axis=0) <= 0):
                raise FusionError(
                    f"{self!r}: some parameters got total weight 0 (every partition that "
                    "has them was weighted 0), nothing to fuse"
                )

    def finalize(self, summary, template, meta):
        classes, stacks, weights = self._stacked(summary)
        self._check_weights(weights)
        params = self._aggregate_all(stacks, weights)
        carrier = next((p.carrier for p in summary.parts), None)
        return adapter_for(template).build(template, classes, params, meta, carrier)

    def _aggregate_all(self, stacks, weights):
        return {k: self.aggregate(stacks[k], weights[k]) for k in stacks}


def _spread(weights, shape):
    """Per-row (or scalar) ``weights`` broadcast to a parameter of ``shape``."""
    weights = np.asarray(weights, dtype=float)
    return np.broadcast_to(
        weights.reshape(weights.shape + (1,) * (len(shape) - weights.ndim)), shape
    )


def _sorted_with_weights(values, weights):
    """``values`` sorted along axis 0 (NaN last) and ``weights`` in the same order."""
    order = np.argsort(values, axis=0, kind="stable")
    return np.take_along_axis(values, order, 0), np.take_along_axis(weights, order, 0)


def _weighted_median(values, weights):
    """Coordinate-wise weighted median over axis 0; ties at half the weight average."""
    v, w = _sorted_with_weights(values, np.where(np.isnan(values), 0.0, weights))
    cum = np.cumsum(w, axis=0)
    half = cum[-1] / 2
    eps = 1e-12 * cum[-1]
    lower = np.argmax(cum >= half - eps, axis=0)
    upper = np.argmax(cum > half + eps, axis=0)
    lo = np.take_along_axis(v, lower[np.newaxis], 0)[0]
    hi = np.take_along_axis(v, upper[np.newaxis], 0)[0]
    return (lo + hi) / 2


class Median(_RobustFusion):
    """Coordinate-wise median of the partitions' parameters.

    Each coefficient (and intercept) of the fused model is the median of that
    coefficient over the partition models, so fewer than half of the partitions,
    however corrupted, cannot drag it outside the range of the clean ones. The
    summary keeps every partition's parameters (a median is not decomposable), so
    it grows with the number of partitions.

    Parameters
    ----------
    weighted : bool, default=False
        Weight each partition by the rows its model was fitted on, or by the
        ``weights`` of :func:`daskfuse.fuse` (a weighted median: the value at which
        the cumulative weight reaches half); otherwise every partition counts once,
        and :func:`daskfuse.fuse` refuses ``weights``.

    Examples
    --------
    >>> from daskfuse.fusion.robust import Median
    >>> Median(weighted=True)
    Median(weighted=True)
    """

    name = "median"

    def __init__(self, weighted=False):
        if not isinstance(weighted, bool | np.bool_):
            raise ValueError(f"Median(weighted=...) must be True or False; got {weighted!r}")
        self.weighted = bool(weighted)

    def _params(self):
        return {"weighted": self.weighted} if self.weighted else {}

    def aggregate(self, values, weights):
        if not self.weighted:
            return np.nanmedian(values, axis=0)
        return _weighted_median(values, weights)


class TrimmedMean(_RobustFusion):
    """Coordinate-wise trimmed mean of the partitions' parameters.

    For each coefficient, the ``beta`` fraction of the lowest and of the highest
    values over the partitions are dropped and the rest averaged. Unweighted, the
    ``floor(beta * k)`` lowest and highest of the ``k`` partitions that have the
    coefficient are dropped (as :func:`scipy.stats.trim_mean`); weighted, ``beta`` of
    the total row weight is cut from each end, splitting a partition's weight at the
    cut. ``beta=0`` is plain (weighted) averaging. The summary keeps every
    partition's parameters, so it grows with the number of partitions.

    Parameters
    ----------
    beta : float, default=0.1
        Fraction trimmed from each end, in ``[0, 0.5)``.
    weighted : bool, default=False
        Trim and average by the rows each partition's model was fitted on, or by
        the ``weights`` of :func:`daskfuse.fuse`; otherwise every partition counts
        once, and :func:`daskfuse.fuse` refuses ``weights``.

    Examples
    --------
    >>> from daskfuse.fusion.robust import TrimmedMean
    >>> TrimmedMean(0.25)
    TrimmedMean(beta=0.25)
    """

    name = "trimmed_mean"

    def __init__(self, beta=0.1, weighted=False):
        check_real(
            beta,
            "TrimmedMean(beta=...)",
            low=0,
            high=0.5,
            high_open=True,
            expected="a number in [0, 0.5)",
        )
        if not isinstance(weighted, bool | np.bool_):
            raise ValueError(f"TrimmedMean(weighted=...) must be True or False; got {weighted!r}")
        self.beta = float(beta)
        self.weighted = bool(weighted)

    def _params(self):
        out = {"beta": self.beta}
        if self.weighted:
            out["weighted"] = self.weighted
        return out

    def aggregate(self, values, weights):
        w = np.where(np.isnan(values), 0.0, weights if self.weighted else 1.0)
        v, w = _sorted_with_weights(values, w)
        v = np.where(np.isnan(v), 0.0, v)
        if self.weighted:
            cum = np.cumsum(w, axis=0)
            prev = cum - w
            total = cum[-1]
            lo, hi = self.beta * total, (1 - self.beta) * total
            kept = np.clip(np.minimum(cum, hi) - np.maximum(prev, lo), 0.0, None)
        else:
            k = w.sum(axis=0)
            cut = np.floor(self.beta * k)
            rank = np.arange(len(v)).reshape((-1,) + (1,) * (v.ndim - 1))
            kept = ((rank >= cut) & (rank < k - cut)).astype(float)
        return (kept * v).sum(axis=0) / kept.sum(axis=0)


class Krum(_RobustFusion):
    """Krum: the partition model closest to its neighbours (multi-Krum: the m best).

    Each partition's parameters form one vector; its score is the sum of squared
    distances to its ``n - f - 2`` nearest other partitions. The partition with the
    lowest score is the fused model; with ``m > 1`` (multi-Krum) the ``m`` best are
    averaged, weighted by their rows (by the ``weights`` of :func:`daskfuse.fuse`,
    equally without them), as Flower's MultiKrum weighs them by example counts:
    coefficient by coefficient, each from the ``m`` best-scored partitions that
    have it. The scores themselves are unweighted. Distances between classifiers
    that saw different classes use the class rows both have. The summary keeps
    every partition's parameters, so it grows with the number of partitions.

    Up to ``f`` corrupted partitions can be tolerated only when ``n > 2 f + 2``:
    with ``n <= 2 f + 2`` partitions (e.g. fewer than 5 for the default ``f=1``)
    the fit (or :func:`daskfuse.fuse`) raises a FusionError that says so.

    Parameters
    ----------
    f : int, default=1
        Number of corrupted partitions to tolerate (>= 0); needs more than
        ``2 f + 2`` partitions.
    m : int, default=1
        Number of best-scored partitions averaged (>= 1, at most the number of
        partitions).

    Raises
    ------
    FusionError
        At the fit, when there are ``n <= 2 f + 2`` partitions or fewer than ``m``;
        at the root, when the ``m`` best-scored partitions all have weight 0.

    Examples
    --------
    >>> from daskfuse.fusion.robust import Krum
    >>> Krum(f=2, m=3)
    Krum(f=2, m=3)
    """

    name = "krum"
    #: the average of the m best is weighted (the scores are not)
    weighted = True

    def __init__(self, f=1, m=1):
        self.f = check_int(f, "Krum(f=...)", low=0)
        self.m = check_int(m, "Krum(m=...)", low=1)

    def _params(self):
        return {"f": self.f, "m": self.m}

    def _check_n(self, n):
        if n <= 2 * self.f + 2:
            raise FusionError(
                f"{self!r} needs more than 2*f + 2 = {2 * self.f + 2} partitions to "
                f"tolerate f={self.f} corrupted ones; got n={n}. Use more partitions or "
                "a smaller f"
            )
        if self.m > n:
            raise FusionError(f"{self!r}: m={self.m} exceeds the n={n} partitions")

    def prepare(self, n_partitions):
        self._check_n(n_partitions)
        return self

    def scores(self, stacks):
        """Krum score of each partition (lower is better) from the stacked parameters."""
        flat = np.concatenate([v.reshape(len(v), -1) for v in stacks.values()], axis=1)
        n = len(flat)
        diff = flat[:, np.newaxis, :] - flat[np.newaxis, :, :]
        dist = np.nansum(diff**2, axis=2)
        np.fill_diagonal(dist, np.inf)
        nearest = np.sort(dist, axis=1)[:, : n - self.f - 2]
        return nearest.sum(axis=1)

    def _aggregate_all(self, stacks, weights):
        n = len(next(iter(stacks.values())))
        self._check_n(n)
        order = np.argsort(self.scores(stacks), kind="stable")
        params = {}
        for name, values in stacks.items():
            v = values[order]
            have = ~np.isnan(v)
            take = have & (np.cumsum(have, axis=0) <= self.m)
            # one model is taken as it is, whatever its weight
            kept = np.where(take, weights[name][order], 0.0) if self.m > 1 else take * 1.0
            total = kept.sum(axis=0)
            if np.any(total <= 0):
                raise FusionError(
                    f"{self!r}: the {self.m} best-scored partitions all have weight 0 for "
                    f"some of the {name} parameters, nothing to average"
                )
            params[name] = (kept * np.where(take, v, 0.0)).sum(axis=0) / total
        return params
