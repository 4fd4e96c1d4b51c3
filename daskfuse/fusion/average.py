"""Parameter averaging: uniform (:class:`Average`) and weighted (:class:`Weighted`).

The summary carries ``sum(w * theta)`` and ``sum(w)`` per coefficient row, never an
average of averages, so the result does not depend on how the tree groups the
partitions. Classifier rows are aligned by class label: a class that a partition never
saw takes its row only from the partitions that did.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import reduce

import numpy as np

from .._adapters import adapter_for, linear_estimator_names, parameter_change
from .._validation import check_real
from ..exceptions import FusionError
from .base import Fuser, check_holdout

__all__ = [
    "MEANING_PARAMS",
    "QUIET_PARAMS",
    "Average",
    "ParameterSum",
    "Weighted",
    "differing_params",
    "weight_scale",
]


def weight_scale(weights):
    """The power of two that brings the largest of ``weights`` into [0.5, 1).

    Sums of huge finite weights (``1e308 + 1e308``) overflow to inf, and the average
    becomes NaN; scaled by this factor, ``n`` weights sum to at most ``n``.
    Multiplying by a power of two is exact (short of underflow), so every weighted
    average of the scaled weights is bitwise the one of the original weights.

    Parameters
    ----------
    weights : array-like of shape (n,)
        Finite, non-negative weights, not all zero.

    Returns
    -------
    scale : float

    Examples
    --------
    >>> weight_scale([3.0, 1.0])
    0.25
    >>> [w * weight_scale([1e308, 1e308]) for w in (1e308, 1e308)]
    [0.5562684646268004, 0.5562684646268004]
    """
    _, exponent = np.frexp(np.max(np.asarray(weights, dtype=float)))
    return float(np.ldexp(1.0, -int(exponent)))


#: parameters that change what the fitted coefficients mean (the intercept's presence,
#: the loss or penalty they minimise, the multiclass scheme, the network's units):
#: fitted models that differ in one are not averaged
MEANING_PARAMS = (
    "fit_intercept",
    "loss",
    "penalty",
    "multi_class",
    "activation",
    "hidden_layer_sizes",
)

#: parameters that only steer the fit's bookkeeping: differences go unreported (an MLP's
#: random_state has its own warning: it must be shared)
QUIET_PARAMS = ("random_state", "verbose", "n_jobs", "copy_X", "warm_start")


def _same_value(a, b):
    """Whether two parameter values are equal (``(4,)`` and ``[4]``, ``1`` and ``1.0``)."""
    try:
        return bool(np.array_equal(np.atleast_1d(np.asarray(a)), np.atleast_1d(np.asarray(b))))
    except (TypeError, ValueError):
        return a == b


def differing_params(models):
    """The parameters in which fitted ``models`` differ from ``models[0]``.

    Parameters
    ----------
    models : sequence of estimators
        Estimators of one type.

    Returns
    -------
    differ : dict of str to tuple
        For each differing parameter, ``(index, models[0]'s value, models[index]'s
        value)`` for the first model that differs in it.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> differing_params([Ridge(alpha=1.0), Ridge(alpha=1.0), Ridge(alpha=2.0)])
    {'alpha': (2, 1.0, 2.0)}
    """
    first = models[0].get_params(deep=False)
    differ = {}
    for i, model in enumerate(models[1:], start=1):
        for name, value in model.get_params(deep=False).items():
            if name not in differ and not _same_value(first.get(name), value):
                differ[name] = (i, first.get(name), value)
    return differ


@dataclass
class ParameterSum:
    """Weighted sums of parameters: the summary of the averaging fusers.

    Attributes
    ----------
    classes : ndarray or None
        Sorted class labels the rows of each array belong to (classifiers only).
    sums : dict of str to ndarray
        ``sum(w * theta)`` for each parameter.
    weights : ndarray
        ``sum(w)``: one per class row for classifiers, a scalar for regressors.
    n_partitions : int
        Partitions summed.
    carrier, carrier_index : estimator or None, int
        For models whose private state only ``fit`` sets up (MLP), the fitted model
        of the lowest-numbered partition summed, and that number.
    report_weight : float or None
        A leaf's partition weight as given (unscaled), for the partition report;
        None once combined.
    """

    classes: np.ndarray | None
    sums: dict
    weights: np.ndarray
    n_partitions: int = 1
    carrier: object = None
    carrier_index: int = 0
    report_weight: float | None = None


def _aligned(summary, classes):
    """``summary``'s sums and weights laid out on the (larger) class list ``classes``."""
    if summary.classes is None or np.array_equal(summary.classes, classes):
        return summary.sums, summary.weights
    rows = np.searchsorted(classes, summary.classes)
    sums = {}
    for name, value in summary.sums.items():
        full = np.zeros((len(classes),) + value.shape[1:])
        full[rows] = value
        sums[name] = full
    weights = np.zeros(len(classes))
    weights[rows] = summary.weights
    return sums, weights


#: what ``keep`` may be: the fused model of the last round, or of the best by training score
KEEP = ("last", "best")


class _ParameterAveraging(Fuser):
    #: after several rounds, ``fit`` returns the last round's fused model ("last") or the
    #: one with the best training score ("best"; ``daskfuse._rows.run_passes``)
    keep = "best"
    #: FedAvgM's server momentum (0: plain FedAvg); see :meth:`server_step`
    momentum = 0.0
    requirement = (
        "parameter averaging needs a linear model with coef_ and intercept_ "
        f"({', '.join(linear_estimator_names())}) or an MLPClassifier/MLPRegressor"
    )

    def supports(self, estimator):
        return adapter_for(estimator) is not None

    def tags(self, estimator):
        """Fused from fitted models; seeds, rounds and proximal as the family allows."""
        tags = replace(
            super().tags(estimator),
            from_models=True,
            given_weights_reason=self._given_weights_reason(),
            # weighted sums: the root's sums plus new partitions' are all partitions'
            partial_fit_reason=self._partial_fit_reason(),
        )
        adapter = adapter_for(estimator)
        if adapter is None:
            return tags
        return replace(
            tags,
            # networks are averaged only when grown from the same initial weights
            shared_seed=adapter.shared_seed,
            rounds_reason=adapter.rounds_reason(estimator),
            proximal_reason=adapter.proximal_reason(estimator),
        )

    def partition_weight(self, info):
        raise NotImplementedError

    def _partial_fit_reason(self):
        """Why ``partial_fit`` cannot continue a fit (None: its sums can take new partitions)."""
        return None

    def _set_round_options(self, keep, momentum):
        """Validate and set ``keep`` and ``momentum`` (the options of several rounds)."""
        if keep not in KEEP:
            raise ValueError(
                f"{type(self).__name__}(keep=...) must be one of {', '.join(map(repr, KEEP))}; "
                f"got {keep!r}"
            )
        self.keep = keep
        self.momentum = check_real(
            momentum, f"{type(self).__name__}(momentum=...)", low=0.0, high=1.0, high_open=True
        )

    def _round_params(self):
        """``keep`` and ``momentum`` where they differ from their defaults (for ``_params``)."""
        out = {} if self.keep == "best" else {"keep": self.keep}
        if self.momentum:
            out["momentum"] = self.momentum
        return out

    def server_step(self, start, fused, velocity):
        """FedAvgM's server momentum, applied where the fused model is, between rounds.

        Hsu, Qi and Brown (2019), "Measuring the Effects of Non-Identical Data
        Distribution for Federated Visual Classification", arXiv:1909.06335: the
        round's fused average ``a_r`` of the partition models trained from
        ``theta_{r-1}`` (``start``) gives the pseudo-gradient ``theta_{r-1} - a_r``;
        with ``beta = momentum``, ``v_r = beta * v_{r-1} + (theta_{r-1} - a_r)`` and
        ``theta_r = theta_{r-1} - v_r`` (server learning rate 1). It is exact as
        published: only the parameter-sized fused model and velocity are involved,
        on the client between passes. The first local round (``velocity`` None) is
        plain FedAvg.

        Parameters
        ----------
        start : estimator
            The previous round's fused model, which the partitions trained from.
        fused : estimator
            This round's fused average.
        velocity : dict of str to ndarray or None
            The previous round's ``v``; None before the first local round.

        Returns
        -------
        model : estimator
            ``fused`` itself without momentum (or where the layouts differ), else the
            model at ``theta_r``.
        velocity : dict of str to ndarray or None
        """
        if not self.momentum:
            return fused, velocity
        adapter = adapter_for(fused)
        classes, theta = adapter.extract(fused)
        start_classes, theta0 = adapter.extract(start)
        same = theta.keys() == theta0.keys() and all(
            theta[k].shape == theta0[k].shape for k in theta
        )
        if not same or not np.array_equal(classes, start_classes):
            return fused, None
        if velocity is None:
            # the step from the one-shot model to the first local round's average is
            # no gradient step (full local fits against a few epochs): not carried on
            return fused, {k: np.zeros_like(v) for k, v in theta.items()}
        pseudo = {k: self.momentum * velocity[k] + theta0[k] - theta[k] for k in theta}
        params = {k: theta0[k] - pseudo[k] for k in theta}
        meta = {
            "n_features_in_": getattr(fused, "n_features_in_", None),
            "feature_names_in_": getattr(fused, "feature_names_in_", None),
        }
        return adapter.build(fused, classes, params, meta, fused), pseudo

    def check_models(self, models):
        """Check that fitted ``models`` (:func:`daskfuse.fuse`) can be averaged.

        Raises
        ------
        FusionError
            The models differ in a parameter of :data:`MEANING_PARAMS`, which changes
            what their coefficients mean.

        Warns
        -----
        UserWarning
            They differ in other parameters (outside :data:`QUIET_PARAMS`): their
            coefficients mean the same but were fitted differently; the fused model
            keeps ``models[0]``'s parameters.
        """
        differ = differing_params(models)
        for name in MEANING_PARAMS:
            if name in differ:
                i, first, other = differ[name]
                raise FusionError(
                    f"{self!r} averages coefficients that must mean the same thing, but the "
                    f"models differ in {name}: models[0] has {name}={first!r}, models[{i}] "
                    f"has {name}={other!r}. Fit them with the same {name}, or use "
                    "fusion='vote'"
                )
        loud = {k: v for k, v in differ.items() if k not in QUIET_PARAMS}
        if loud:
            detail = ", ".join(
                f"{k} ({first!r} in models[0], {other!r} in models[{i}])"
                for k, (i, first, other) in loud.items()
            )
            warnings.warn(
                f"{self!r}: the models were fitted with different {detail}; their "
                "coefficients are averaged all the same, and the fused model keeps "
                "models[0]'s parameters",
                UserWarning,
                stacklevel=3,
            )

    def _given_weights_reason(self):
        """Why :func:`daskfuse.fuse` cannot honour its ``weights``, or None when it does.

        A strategy that has no weighted form refuses given weights rather than
        silently ignoring them (``FuserTags.given_weights_reason``).
        """
        return None

    def local_fit(self, template, feedback, X, y, info):
        return adapter_for(template).local_fit(
            template,
            feedback,
            X,
            y,
            info["local_epochs"],
            info["proximal"],
            info.get("steps"),
        )

    def change(self, previous, current):
        adapter = adapter_for(previous)
        return parameter_change(adapter.extract(previous)[1], adapter.extract(current)[1])

    def weight_scale(self, info):
        """Exact power-of-two factor on the partition weights in the summaries.

        ``info["weight_scale"]`` where the weights are known up front
        (:func:`daskfuse.fuse`), else 1; see :func:`weight_scale`.
        """
        return info.get("weight_scale", 1.0)

    def summarize(self, estimator, X, y, info):
        return self._parameters(estimator, info, scaled=True)

    def _parameters(self, estimator, info, scaled):
        """One partition's parameters as a ``ParameterSum``: ``w * theta`` when
        ``scaled``, else ``theta`` itself (for the robust fusers' root statistics).

        ``report_weight`` is the partition's weight as given; the sums hold it times
        :meth:`weight_scale`, so that huge weights cannot overflow them.
        """
        given = float(self.partition_weight(info))
        w = given * self.weight_scale(info)
        adapter = adapter_for(estimator)
        classes, params = adapter.extract(estimator)
        if classes is None or not adapter.aligns_classes:
            weights = np.asarray(w)
        else:
            weights = np.full(len(classes), w)
        factor = w if scaled else 1.0
        return ParameterSum(
            classes,
            {k: factor * np.asarray(v, dtype=float) for k, v in params.items()},
            weights,
            carrier=estimator if adapter.needs_carrier else None,
            carrier_index=info["index"],
            report_weight=given,
        )

    def combine(self, summaries):
        first = summaries[0]
        if first.classes is None:
            classes = None
        elif first.weights.ndim == 0:
            classes = first.classes
            for s in summaries[1:]:
                if not np.array_equal(s.classes, classes):
                    raise FusionError(
                        f"{self!r}: partitions saw different classes ({list(classes)} and "
                        f"{list(s.classes)}); averaging these models needs every partition "
                        "to see every class: use partition='stratified' or fusion='vote'"
                    )
        else:
            classes = reduce(np.union1d, [s.classes for s in summaries])
        aligned = [_aligned(s, classes) for s in summaries]
        shapes = {k: v.shape for k, v in aligned[0][0].items()}
        for sums, _ in aligned[1:]:
            if {k: v.shape for k, v in sums.items()} != shapes:
                raise FusionError(
                    f"{self!r}: the partition models have differently shaped parameters "
                    "and cannot be averaged"
                )
        carrier = min(summaries, key=lambda s: s.carrier_index)
        return ParameterSum(
            classes,
            {k: sum(a[0][k] for a in aligned) for k in shapes},
            sum(a[1] for a in aligned),
            sum(s.n_partitions for s in summaries),
            carrier.carrier,
            carrier.carrier_index,
        )

    def finalize(self, summary, template, meta):
        weights = np.asarray(summary.weights, dtype=float)
        if np.any(weights <= 0):
            if summary.classes is None:
                raise FusionError(f"{self!r}: every partition got weight 0, nothing to average")
            empty = summary.classes[weights <= 0]
            raise FusionError(
                f"{self!r}: the rows of class(es) {list(empty)} got total weight 0 "
                "(every partition that saw them was weighted 0)"
            )
        params = {}
        for name, total in summary.sums.items():
            w = weights.reshape(weights.shape + (1,) * (total.ndim - weights.ndim))
            params[name] = total / w
        return adapter_for(template).build(template, summary.classes, params, meta, summary.carrier)


class Average(_ParameterAveraging):
    """Uniform parameter averaging: every partition's model counts the same.

    It has no weighted form: :func:`daskfuse.fuse` refuses ``weights`` with it (use
    :class:`Weighted`, ``fusion="weighted"``, to weigh the models).

    Parameters
    ----------
    keep : {"best", "last"}, default="best"
        With ``rounds`` > 1, which round's fused model ``fit`` returns: the last
        one, or the one with the best training score (the fused model's own score
        on all training rows, which the next round's fit tasks work out anyway:
        accuracy, i.e. 1 - the 0/1 loss, for classifiers; the row-weighted R² of the
        partitions for regressors), the latest of equals. ``"best"`` never ends
        worse than the one-shot model on that score; ``history_["kept"]`` marks the
        round. Under ``Secure`` or ``DP`` the partition scores are private and the
        last round is kept.
    momentum : float in [0, 1), default=0.0
        FedAvgM's server momentum (Hsu et al., 2019; see :meth:`server_step`), a
        drift correction for rounds on skewed partitions: the step from one round's
        fused model to the next keeps ``momentum`` of the previous step. 0 is plain
        FedAvg.

    Examples
    --------
    >>> from daskfuse.fusion import Average
    >>> Average()
    Average()
    """

    name = "average"

    def __init__(self, *, keep="best", momentum=0.0):
        self._set_round_options(keep, momentum)

    def _params(self):
        return self._round_params()

    def partition_weight(self, info):
        return 1.0

    def _given_weights_reason(self):
        return (
            f"{self!r} counts every model once and has no weighted form; use "
            "fusion='weighted' to weigh each model by its entry of weights"
        )


class Weighted(_ParameterAveraging):
    """Weighted parameter averaging.

    Parameters
    ----------
    by : {"rows", "score"} or array-like of shape (n_partitions,), default="rows"
        ``"rows"`` weights each partition's model by the rows it was fitted on;
        ``"score"`` by its score (accuracy or R², clipped at 0) on ``holdout`` of its
        partition's rows, held out from its fit; an array gives the weight of each
        partition, in partition order (non-negative, not all zero; only their ratios
        matter: the sums scale them exactly by a power of two, so that huge weights
        cannot overflow). With :func:`daskfuse.fuse`, ``"rows"`` weighs the models
        by its ``weights`` (equally without them); ``"score"`` and an array refuse
        ``weights`` (fitted models carry no held-out rows, and an array already
        gives the weights).
    holdout : float, default=0.2
        Fraction of each partition held out for ``by="score"``; ignored otherwise.
    keep : {"best", "last"}, default="best"
        Which round's fused model ``fit`` returns; as for :class:`Average`.
    momentum : float in [0, 1), default=0.0
        FedAvgM's server momentum between rounds; as for :class:`Average`.

    Examples
    --------
    >>> from daskfuse.fusion import Weighted
    >>> Weighted(by="score", holdout=0.25)
    Weighted(by='score', holdout=0.25)
    """

    name = "weighted"

    def __init__(self, by="rows", *, holdout=0.2, keep="best", momentum=0.0):
        self._set_round_options(keep, momentum)
        if isinstance(by, str):
            if by not in ("rows", "score"):
                raise ValueError(
                    f"Weighted(by=...) must be 'rows', 'score' or an array of weights; got {by!r}"
                )
        else:
            weights = np.asarray(by, dtype=float)
            if weights.ndim != 1 or weights.size == 0:
                raise ValueError(
                    "Weighted(by=...) weights must be a non-empty 1-D array, one per "
                    f"partition; got shape {weights.shape}"
                )
            if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError(
                    f"Weighted(by=...) weights must be finite and >= 0; got {weights.tolist()}"
                )
            if not np.any(weights > 0):
                raise ValueError("Weighted(by=...) weights are all zero")
            by = tuple(weights.tolist())
        check_holdout(holdout, "Weighted(holdout=...)")
        self.by = by
        self.holdout_fraction = holdout

    def tags(self, estimator):
        """As parameter averaging, holding rows out where weighting by score."""
        return replace(
            super().tags(estimator),
            holdout=self.holdout_fraction if self.by == "score" else 0.0,
        )

    def _params(self):
        out = {"by": self.by}
        if self.by == "score":
            out["holdout"] = self.holdout_fraction
        return {**out, **self._round_params()}

    def _partial_fit_reason(self):
        if not isinstance(self.by, tuple):
            return None
        return (
            f"{self!r} gives one weight per partition of one fit, none for new "
            "partitions; use by='rows' or by='score'"
        )

    def prepare(self, n_partitions):
        if isinstance(self.by, tuple) and len(self.by) != n_partitions:
            raise ValueError(
                f"Weighted(by=...) has {len(self.by)} weights but the data has "
                f"{n_partitions} partitions"
            )
        return self

    def _given_weights_reason(self):
        if self.by == "rows":
            return None
        if self.by == "score":
            return (
                f"{self!r} weighs by scores on held-out rows, which fitted models do not "
                "carry; use fusion='weighted' (by='rows') to weigh them by weights"
            )
        return (
            f"{self!r} already gives the weights; pass them once, as Weighted(by=...) "
            "or as weights with fusion='weighted'"
        )

    def partition_weight(self, info):
        if self.by == "rows":
            return info["n_rows"]
        if self.by == "score":
            score = info["holdout_score"]
            if score is None:
                raise FusionError(
                    f"{self!r} needs each model's score on held-out rows; partition "
                    f"{info['index']} has none (already fitted models carry no held-out "
                    "rows): use by='rows' or an array of weights"
                )
            return max(score, 0.0)
        return self.by[info["index"]]

    def weight_scale(self, info):
        if isinstance(self.by, tuple):
            return weight_scale(self.by)
        return super().weight_scale(info)
