"""Ensemble ("final") fusion: keep every partition's model and let them decide together.

:class:`Vote`
    any classifier or regressor: a weighted (hard or soft) vote, or a weighted mean
    of predictions, in a plain :class:`~daskfuse.models.FusedVotingClassifier` /
    :class:`~daskfuse.models.FusedVotingRegressor`.
:class:`Stack`
    any classifier or regressor: a meta-learner fitted on the members' outputs for
    rows that each partition held out, in a plain
    :class:`~daskfuse.models.FusedStackingClassifier` /
    :class:`~daskfuse.models.FusedStackingRegressor`.
:class:`Trees`
    random forests and extra-trees: one plain forest of the same class holding every
    partition's trees.

The summary of all three is the list of the partitions' models (with what each
needs), so combine is list concatenation; finalize orders the members by partition
index, which makes the result independent of how the tree grouped the partitions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.utils.class_weight import compute_sample_weight

from .._adapters import stamp_inputs
from .._quiet import quiet_warnings
from .._validation import check_int
from ..exceptions import FusionError, PartitionError
from ..models import (
    FusedStackingClassifier,
    FusedStackingRegressor,
    FusedVotingClassifier,
    FusedVotingRegressor,
    check_stack_params,
    member_output,
    resolve_stack_method,
    stack_features,
    union_classes,
)
from .base import Fuser, check_holdout, row_weight

__all__ = ["Member", "Members", "Stack", "Trees", "Vote"]


@dataclass
class Member:
    """One partition's model in an ensemble summary.

    Attributes
    ----------
    index : int
        The partition's index.
    model : estimator
        Its fitted model.
    weight : float
        Its weight (rows, held-out score or a given weight).
    classes : ndarray or None
        The model's ``classes_`` (classifiers only).
    extra : dict
        What a strategy needs besides (held-out rows for :class:`Stack`).
    """

    index: int
    model: Any
    weight: float
    classes: Any = None
    extra: dict = field(default_factory=dict)


@dataclass
class Members:
    """The summary of the ensemble fusers: the members of the partitions covered.

    A leaf's ``report_weight`` is its partition's weight for the report (None once
    combined); ``report_fit_seconds``, the seconds of the fitting the strategy did
    while summarising (:class:`Stack`'s cross-fitted clone and its outputs on the
    held-out rows, the meta-learner's training rows), which the report counts in the
    partition's ``fit_seconds``.
    """

    members: list
    report_weight: float | None = None
    report_fit_seconds: float | None = None

    @property
    def ordered(self):
        return sorted(self.members, key=lambda m: m.index)


def _is_supervised(estimator):
    return bool(is_classifier(estimator) or is_regressor(estimator))


def _fit_quietly(estimator, X, y, **fit_params):
    # as daskfuse's own fit tasks do: convergence and similar UserWarnings of one
    # partition's model are not the user's concern
    with quiet_warnings(UserWarning):
        return estimator.fit(X, y, **fit_params)


class _Ensemble(Fuser):
    """Common parts: list concatenation as combine."""

    requirement = "ensemble fusion needs a classifier or a regressor"

    def supports(self, estimator):
        return _is_supervised(estimator)

    def combine(self, summaries):
        return Members([m for s in summaries for m in s.members])


# ---------------------------------------------------------------------- Vote
class Vote(_Ensemble):
    """Weighted vote of the partitions' models, for any classifier or regressor.

    The fused model is a plain :class:`~daskfuse.models.FusedVotingClassifier` (or
    :class:`~daskfuse.models.FusedVotingRegressor`: the weighted mean of the members'
    predictions) holding every partition's model. Its ``classes_`` are the original
    labels; a member that never saw a class gives it no vote and probability 0.

    Parameters
    ----------
    voting : {"hard", "soft"}, default="hard"
        ``"hard"``: weighted count of the members' predicted labels; ``"soft"``:
        weighted mean of their ``predict_proba`` (the estimator must have it; for
        an SVC: ``CalibratedClassifierCV(SVC(), ensemble=False)``). Ignored for
        regressors.
    weights : {"rows", "score"} or array-like of shape (n_partitions,), default="rows"
        ``"rows"`` weights each member by the rows it was fitted on; ``"score"`` by
        its score (accuracy or R², clipped at 0) on ``holdout`` of its partition's
        rows, held out from its fit; an array gives each partition's weight in
        partition order (non-negative, not all zero).
    holdout : float, default=0.2
        Fraction of each partition held out for ``weights="score"``; ignored
        otherwise.

    Examples
    --------
    >>> from daskfuse.fusion.ensemble import Vote
    >>> Vote(voting="soft", weights="score")
    Vote(voting='soft', weights='score', holdout=0.2)
    """

    name = "vote"

    def __init__(self, voting="hard", weights="rows", *, holdout=0.2):
        if voting not in ("hard", "soft"):
            raise ValueError(f"Vote(voting=...) must be 'hard' or 'soft'; got {voting!r}")
        if isinstance(weights, str):
            if weights not in ("rows", "score"):
                raise ValueError(
                    "Vote(weights=...) must be 'rows', 'score' or an array of weights; "
                    f"got {weights!r}"
                )
        else:
            w = np.asarray(weights, dtype=float)
            if w.ndim != 1 or w.size == 0:
                raise ValueError(
                    "Vote(weights=...) must be a non-empty 1-D array, one weight per "
                    f"partition; got shape {w.shape}"
                )
            if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
                raise ValueError(
                    f"Vote(weights=...) must be finite, >= 0 and not all zero; got {w.tolist()}"
                )
            weights = tuple(w.tolist())
        check_holdout(holdout, "Vote(holdout=...)")
        self.voting = voting
        self.weights = weights
        self.holdout_fraction = holdout

    def tags(self, estimator):
        """Fused from fitted models; rows held out where weighting by score."""
        by_score = self.weights == "score"
        return replace(
            super().tags(estimator),
            from_models=True,
            holdout=self.holdout_fraction if by_score else 0.0,
            # each member is fitted with its rows' weights, weighed by their total
            sample_weight_reason=(
                f"{self!r} weighs the members by their unweighted scores on held-out "
                "rows; use weights='rows' (total sample weight) or an array of weights"
                if by_score
                else None
            ),
            # the members are kept: new partitions' models join them (given weights
            # name the partitions of one fit only)
            partial_fit_reason=(
                None
                if isinstance(self.weights, str)
                else f"{self!r} gives one weight per partition of one fit, none for new "
                "partitions; use weights='rows' or weights='score'"
            ),
        )

    def _params(self):
        out = {"voting": self.voting, "weights": self.weights}
        if self.weights == "score":
            out["holdout"] = self.holdout_fraction
        return out

    def check_estimator(self, estimator, alternatives=()):
        super().check_estimator(estimator, alternatives)
        if (
            self.voting == "soft"
            and is_classifier(estimator)
            and not hasattr(estimator, "predict_proba")
        ):
            raise FusionError(
                f"{self!r} averages predict_proba, which {type(estimator).__name__} does "
                "not have (an SVC gets it as CalibratedClassifierCV(SVC(), ensemble=False)); "
                "use Vote(voting='hard')"
            )

    def prepare(self, n_partitions):
        if isinstance(self.weights, tuple) and len(self.weights) != n_partitions:
            raise ValueError(
                f"Vote(weights=...) has {len(self.weights)} weights but the data has "
                f"{n_partitions} partitions"
            )
        return self

    def _weight(self, info):
        if self.weights == "rows":
            # models fused with daskfuse.fuse may not say how many rows they saw
            return 1.0 if info.get("n_rows") is None else float(row_weight(info))
        if self.weights == "score":
            score = info.get("holdout_score")
            if score is None:
                raise FusionError(
                    f"{self!r} needs each model's score on held-out rows; partition "
                    f"{info['index']} has none (already fitted models carry no held-out "
                    "rows): use weights='rows' or an array of weights"
                )
            return max(float(score), 0.0)
        return float(self.weights[info["index"]])

    def summarize(self, estimator, X, y, info):
        weight = self._weight(info)
        classes = getattr(estimator, "classes_", None) if is_classifier(estimator) else None
        return Members([Member(info["index"], estimator, weight, classes)], weight)

    def finalize(self, summary, template, meta):
        members = summary.ordered
        weights = np.array([m.weight for m in members])
        if not np.any(weights > 0):
            raise FusionError(f"{self!r}: every partition got weight 0, nothing to vote")
        models = [m.model for m in members]
        if is_classifier(template):
            classes = meta.get("classes")
            if classes is None:
                classes = union_classes([m.classes for m in members])
            fused = FusedVotingClassifier(
                models, weights=weights, voting=self.voting, classes=classes
            ).fit()
        else:
            fused = FusedVotingRegressor(models, weights=weights).fit()
        return stamp_inputs(fused, meta)


# --------------------------------------------------------------------- Stack
def _holdout_rows(y, fraction, cap, rng, stratify):
    """Row indices ``(fit, held_out)``: ``fraction`` of the rows, at most about ``cap``.

    Stratified for classifiers: each class keeps its share in both parts, and at
    least one row of every class stays in the fit part.
    """
    n = len(y)
    if not stratify:
        n_hold = min(int(round(n * fraction)), cap, n - 1)
        order = rng.permutation(n)
        hold = order[:n_hold]
    else:
        share = min(fraction, cap / n)
        hold = []
        for label in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == label))
            n_label = min(int(np.floor(len(rows) * share + 0.5)), len(rows) - 1)
            hold.append(rows[:n_label])
        hold = np.concatenate(hold)
        if len(hold) > cap:
            hold = rng.permutation(hold)[:cap]
    mask = np.zeros(n, dtype=bool)
    mask[hold] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _stack_block(member, X, start, stop, classes):
    """One member's meta-feature columns for the held-out rows ``X`` of all partitions.

    Rows ``start:stop`` are the member's own partition's: they get the output of the
    clone that did not see them (computed in the partition task), never that of the
    member fitted on them, so the member predicts only the other partitions' rows.
    """
    method = member.extra["method"]
    own = stack_features(member.extra["raw"], method, member.extra["raw_classes"], classes)
    others = np.r_[0:start, stop : len(X)]
    if len(others) == 0:
        return own
    rest = stack_features(
        member_output(member.model, method, X[others]), method, member.classes, classes
    )
    block = np.empty((len(X), rest.shape[1]), dtype=rest.dtype)
    block[others] = rest
    block[start:stop] = own
    return block


class Stack(_Ensemble):
    """Stacking: a meta-learner fitted on the members' outputs for held-out rows.

    Each partition's model is fitted on all of its rows (it is the member used for
    prediction). To give the meta-learner honest inputs, each partition also holds
    out ``holdout`` of its rows (at most ``max_holdout_rows``, stratified by class),
    fits a second clone of the estimator on the rest and records that clone's output
    on the held-out rows: in the meta-learner's training set, a partition's rows get
    that clone's output in their own partition's columns and the other partitions'
    members' outputs (models that never saw those rows) elsewhere. This is
    scikit-learn's cross-fitted stacking with one held-out fold per partition; it
    costs one more fit on ``1 - holdout`` of the rows per partition, and only the
    held-out rows (not the partition) travel to the final task.

    The fused model is a plain :class:`~daskfuse.models.FusedStackingClassifier` (or
    :class:`~daskfuse.models.FusedStackingRegressor`).

    Parameters
    ----------
    final_estimator : estimator or None, default=None
        The meta-learner (cloned); None is ``LogisticRegression()`` for classifiers
        and ``RidgeCV()`` for regressors.
    holdout : float, default=0.2
        Fraction of each partition's rows held out for the meta-learner.
    max_holdout_rows : int, default=2000
        At most this many held-out rows per partition (they travel to the final
        task).
    stack_method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        Which member output feeds the meta-learner (classifiers); ``"auto"`` takes the
        first of these the estimator has.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from daskfuse.fusion.ensemble import Stack
    >>> Stack(LogisticRegression(C=10.0), holdout=0.25)
    Stack(final_estimator=LogisticRegression(C=10.0), holdout=0.25, max_holdout_rows=2000, \
stack_method='auto')
    """

    name = "stack"

    def __init__(
        self, final_estimator=None, *, holdout=0.2, max_holdout_rows=2000, stack_method="auto"
    ):
        check_stack_params("Stack", final_estimator, stack_method)
        check_holdout(holdout, "Stack(holdout=...)")
        check_int(max_holdout_rows, "Stack(max_holdout_rows=...)", low=1)
        self.final_estimator = final_estimator
        # not ``holdout``: the framework's holdout would take the rows from the member
        self.holdout_fraction = holdout
        self.max_holdout_rows = int(max_holdout_rows)
        self.stack_method = stack_method

    def _params(self):
        return {
            "final_estimator": self.final_estimator,
            "holdout": self.holdout_fraction,
            "max_holdout_rows": self.max_holdout_rows,
            "stack_method": self.stack_method,
        }

    def tags(self, estimator):
        """Sample weights refused: the meta-learner is fitted without them."""
        return replace(
            super().tags(estimator),
            sample_weight_reason=(
                f"{self!r} fits its final_estimator on held-out rows without their "
                "sample weights (and the cross-fitted clones on the rest), which would "
                "change the fused model unweighted; use fusion='vote' (weights='rows')"
            ),
        )

    def check_estimator(self, estimator, alternatives=()):
        super().check_estimator(estimator, alternatives)
        try:
            resolve_stack_method(estimator, self.stack_method, is_classifier(estimator))
        except TypeError as exc:
            raise FusionError(f"{self!r}: {exc}") from exc

    def summarize(self, estimator, X, y, info):
        index = info["index"]
        if X is None:
            raise FusionError(
                f"{self!r} needs each partition's rows (to hold some out for the "
                "meta-learner); it cannot fuse already fitted models: use Vote"
            )
        classifier = is_classifier(estimator)
        seed = info.get("seed")
        # without a seed the split still has to be reproducible: seed by partition
        rng = np.random.default_rng(index if seed is None else seed)
        fit_rows, held = _holdout_rows(
            np.asarray(y), self.holdout_fraction, self.max_holdout_rows, rng, classifier
        )
        if len(held) == 0 or len(fit_rows) == 0:
            raise PartitionError(
                index,
                f"{len(y)} rows are too few for {self!r} to hold out "
                f"{self.holdout_fraction:.0%} for the meta-learner",
            )
        # a clone of the fitted model keeps its parameters, the partition's seed too;
        # stacking needs this second fit and its outputs on the held-out rows (the
        # meta-learner's training rows), so the report counts both as fitting, as
        # scikit-learn's StackingClassifier.fit spends its cross_val_predict
        start = time.perf_counter()
        cross = _fit_quietly(clone(estimator), X[fit_rows], y[fit_rows])
        method = resolve_stack_method(estimator, self.stack_method, classifier)
        raw = member_output(cross, method, X[held])
        cross_seconds = time.perf_counter() - start
        extra = {
            "X": X[held],
            "y": y[held],
            "method": method,
            "raw": raw,
            "raw_classes": getattr(cross, "classes_", None) if classifier else None,
        }
        classes = getattr(estimator, "classes_", None) if classifier else None
        member = Member(index, estimator, float(info["n_rows"]), classes, extra)
        return Members([member], report_fit_seconds=cross_seconds)

    def finalize(self, summary, template, meta):
        members = summary.ordered
        classifier = is_classifier(template)
        X = np.concatenate([m.extra["X"] for m in members])
        y = np.concatenate([m.extra["y"] for m in members])
        classes = None
        if classifier:
            classes = meta.get("classes")
            if classes is None:
                classes = union_classes([*(m.classes for m in members), np.unique(y)])
        edges = np.cumsum([0] + [len(m.extra["y"]) for m in members])
        blocks = [
            _stack_block(member, X, edges[j], edges[j + 1], classes)
            for j, member in enumerate(members)
        ]
        models = [m.model for m in members]
        if classifier:
            fused = FusedStackingClassifier(
                models, self.final_estimator, stack_method=self.stack_method, classes=classes
            )
        else:
            fused = FusedStackingRegressor(
                models, self.final_estimator, stack_method=self.stack_method
            )
        fused.fit_final(np.hstack(blocks), y)
        return stamp_inputs(fused, meta)


# --------------------------------------------------------------------- Trees
_FORESTS = (
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
)


def _row_class_weights(estimator, y):
    """Per-row weights of ``estimator``'s ``class_weight`` over ``y`` (None: none to apply).

    The weights the partition's own fit gave its rows: ``"balanced"`` counts only
    the classes in ``y``. ``"balanced_subsample"`` without bootstrap is
    ``"balanced"``; with bootstrap the forest computes it per tree on the rows the
    tree drew, which never include a zero-weight row, so it is left to the forest.
    """
    class_weight = estimator.get_params().get("class_weight")
    if class_weight is None:
        return None
    if isinstance(class_weight, str) and class_weight == "balanced_subsample":
        if estimator.get_params().get("bootstrap"):
            return None
        class_weight = "balanced"
    return compute_sample_weight(class_weight, y)


def _refit_with_classes(estimator, X, y, missing, sample_weight=None):
    """Refit a clone of ``estimator`` so that its trees know the ``missing`` classes.

    A forest's class list is ``np.unique(y)``: one zero-weight copy of the first row
    per missing label adds the label without changing what the trees learn: a
    zero-weight row adds nothing to any node's class weights (a bootstrap either
    never draws it, where rows are drawn in proportion to their weights, or draws
    it with weight 0), and, a copy of an existing row, it moves no split
    threshold. Only the trees' ``n_node_samples`` counts (and so ``min_samples_*``)
    see the extra row.

    A ``class_weight`` is applied as the partition's fit applied it: its per-row
    weights over the partition's own rows (see ``_row_class_weights``) become the
    sample weights of a fit without ``class_weight``; left to the forest,
    ``"balanced"`` would weigh the added labels by their zero count (NaN weights).
    ``fit``'s ``sample_weight`` of the rows multiply those weights, as the partition's
    own fit multiplied them.
    """
    X2 = np.concatenate([X, np.repeat(X[:1], len(missing), axis=0)])
    y2 = np.concatenate([np.asarray(y), np.asarray(missing)])
    refit = clone(estimator)
    weights = _row_class_weights(estimator, y)
    if weights is None:
        weights = np.ones(len(X))
    else:
        refit.set_params(class_weight=None)
    if sample_weight is not None:
        weights = weights * sample_weight
    weights = np.concatenate([weights, np.zeros(len(missing))])
    refit = _fit_quietly(refit, X2, y2, sample_weight=weights)
    # the fitted forest keeps the parameters it was given
    return refit.set_params(class_weight=estimator.get_params()["class_weight"])


class Trees(_Ensemble):
    """Tree union: one forest holding every partition's trees.

    For ``RandomForestClassifier``, ``RandomForestRegressor``,
    ``ExtraTreesClassifier`` and ``ExtraTreesRegressor``. The fused model is a plain
    forest of the template's class whose ``estimators_`` are the trees of all
    partitions (``n_estimators`` = their number), so it predicts with the mean over
    all trees, as a forest does. It has no weighted form: :func:`daskfuse.fuse`
    refuses ``weights`` with it (``"vote"`` weighs whole forests).

    A forest's ``predict_proba`` adds its trees' probability columns, so every tree
    must know the same classes: a partition that lacks a class is refitted with the
    missing labels added as zero-weight rows (one extra fit for that partition only;
    see ``_refit_with_classes``); its rows keep the weights of the template's
    ``class_weight`` (``"balanced"``, ``"balanced_subsample"``, a dict or None) as
    the partition's own fit gave them. Forests fused from already fitted models (no rows)
    must already agree on the classes, else a :class:`~daskfuse.exceptions.FusionError`
    names the partitions that do not.

    Seeds: with ``random_state`` given to the daskfuse estimator, each partition's
    forest gets its own seed. Without it, every partition uses the template's own
    ``random_state``: if that is an int, all partitions draw the same random
    sequence (bootstrap positions, feature subsets, extra-trees thresholds) on
    different rows, which gives different but less independent trees; pass
    ``random_state`` to the daskfuse estimator to avoid it.

    The fused forest has no ``oob_score_`` (out-of-bag rows were those of each
    partition) and does not support ``estimators_samples_`` or ``warm_start``
    continuation.

    Examples
    --------
    >>> from daskfuse.fusion.ensemble import Trees
    >>> Trees()
    Trees()
    """

    name = "trees"
    requirement = (
        "tree union needs a random forest or extra-trees model ("
        + ", ".join(cls.__name__ for cls in _FORESTS)
        + ")"
    )

    def supports(self, estimator):
        return isinstance(estimator, _FORESTS)

    def tags(self, estimator):
        """Fused from fitted forests; the global classes realign a lacking one."""
        return replace(
            super().tags(estimator),
            from_models=True,
            needs_classes=True,
            # the members are kept: new partitions' forests join them
            partial_fit_reason=None,
            given_weights_reason=(
                f"{self!r} joins every tree of every forest and has no weighted form; use "
                "fusion='vote' to weigh each forest by its entry of weights"
            ),
            # each forest grows its trees with its rows' weights
            sample_weight_reason=None,
        )

    def summarize(self, estimator, X, y, info):
        classes = None
        if is_classifier(estimator):
            global_classes = info.get("classes")
            if global_classes is not None and X is not None:
                missing = np.setdiff1d(global_classes, estimator.classes_)
                if missing.size:
                    estimator = _refit_with_classes(
                        estimator, X, y, missing, info.get("sample_weight")
                    )
            classes = estimator.classes_
        return Members(
            [Member(info["index"], estimator, float(info["n_rows"]), classes)],
            float(len(estimator.estimators_)),
        )

    def finalize(self, summary, template, meta):
        members = summary.ordered
        models = [m.model for m in members]
        first = models[0]
        outputs = {m.n_outputs_ for m in models}
        if len(outputs) > 1:
            raise FusionError(f"{self!r}: the forests have different n_outputs_: {outputs}")
        fused = clone(template)
        if is_classifier(template):
            classes = union_classes([m.classes for m in members])
            odd = [
                f"partition {m.index} {np.asarray(m.classes).tolist()}"
                for m in members
                if len(m.classes) != len(classes) or not np.array_equal(m.classes, classes)
            ]
            if odd:
                raise FusionError(
                    f"{self!r}: every forest must know all classes {classes.tolist()} for "
                    f"their trees' probabilities to add up; these do not: {'; '.join(odd)}. "
                    "Fit them with daskfuse (which realigns a partition that lacks a "
                    "class) or use Vote"
                )
            fused.classes_ = first.classes_
            fused.n_classes_ = first.n_classes_
        trees = [tree for model in models for tree in model.estimators_]
        fused.set_params(n_estimators=len(trees))
        fused.estimators_ = trees
        fused.estimator_ = first.estimator_
        fused.n_outputs_ = first.n_outputs_
        fused.n_features_in_ = first.n_features_in_
        return stamp_inputs(fused, meta)
