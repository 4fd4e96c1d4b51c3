"""The fusions of column blocks: :class:`GlobalGradient`, :class:`Backfit`,
:class:`ColumnStack` and their resolver."""

from __future__ import annotations

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from .._resolve import pick_strategy
from .._validation import check_int, check_real, is_int
from ..exceptions import FusionError
from ..fusion.base import Strategy
from ..models import (
    check_stack_params,
    resolve_stack_method,
)

#: the estimators that backfitting fuses (exact types: a subclass may change the loss)
BACKFIT_ESTIMATORS = (LinearRegression, Ridge, LogisticRegression)


class VerticalFusion(Strategy):
    """Base class of the fusions of column blocks (:class:`Backfit`, :class:`ColumnStack`)."""

    _token_name = "daskfuse.VerticalFusion"
    name = None

    def unsupported_reason(self, estimator):
        """Why this fusion cannot fuse ``estimator``, or None when it can."""
        raise NotImplementedError


class Backfit(VerticalFusion):
    """Additive fusion of linear models over column blocks (block coordinate descent).

    Converges to the model fitted on all columns: ``LinearRegression``, ``Ridge``
    (one scalar ``alpha``) and ``LogisticRegression`` (L2 penalty or none, binary or
    multinomial, ``class_weight`` supported; not ``liblinear``, which penalises the
    intercept). See the module documentation.

    Parameters
    ----------
    max_rounds : int, default=100
        At most this many rounds (each visits every block once); a
        ``ConvergenceWarning`` says when they were not enough.
    tol : float, default=1e-5
        Stop when the largest change of a coefficient (intercept included) in a round,
        divided by the largest coefficient, is below ``tol``. The rounds converge
        linearly, at a rate ``r`` that grows with the correlation between blocks;
        the coefficients are then within about ``tol * r / (1 - r)`` (relative) of
        the centralised solution (``history_`` shows the rate). The estimator's own
        ``tol``, ``max_iter`` and ``solver`` are not used: each block problem is
        solved to full precision.

    Examples
    --------
    >>> from daskfuse.vertical import Backfit
    >>> Backfit(max_rounds=50, tol=1e-8)
    Backfit(max_rounds=50, tol=1e-08)
    """

    name = "backfit"

    def __init__(self, max_rounds=100, tol=1e-5):
        self.max_rounds = check_int(max_rounds, "Backfit(max_rounds=...)", low=1)
        self.tol = check_real(tol, "Backfit(tol=...)", low=0, low_open=True)

    def _params(self):
        return {"max_rounds": self.max_rounds, "tol": self.tol}

    def unsupported_reason(self, estimator):
        return _linear_reason(estimator, "backfitting")


def _linear_reason(estimator, who):
    """Why ``who`` (backfitting, the global-gradient passes) cannot fuse ``estimator``."""
    if type(estimator) not in BACKFIT_ESTIMATORS:
        return (
            f"{who} fuses LinearRegression, Ridge and LogisticRegression; got "
            f"{type(estimator).__name__}"
        )
    params = estimator.get_params(deep=False)
    if params.get("positive"):
        return f"positive=True (constrained coefficients) is not supported by {who}"
    if isinstance(estimator, Ridge) and np.size(params["alpha"]) != 1:
        return f"{who} needs one scalar alpha"
    if isinstance(estimator, LogisticRegression):
        penalty = params["penalty"]
        if penalty not in ("deprecated", "l2", None):
            return f"{who} solves the L2 (or unpenalised) objective; got penalty={penalty!r}"
        if penalty == "deprecated" and params["l1_ratio"] not in (0, None):
            return (
                f"{who} solves the L2 (or unpenalised) objective; got "
                f"l1_ratio={params['l1_ratio']!r} (an L1 term)"
            )
        if params["solver"] == "liblinear":
            return (
                "solver='liblinear' penalises the intercept, so its optimum is not "
                f"the one {who} converges to; use solver='lbfgs'"
            )
    return None


class GlobalGradient(VerticalFusion):
    """Global-gradient fusion over column blocks: L-BFGS on the whole model, blocks in parallel.

    Minimises scikit-learn's own objective of ``LinearRegression``, ``Ridge`` (one
    scalar ``alpha``) and ``LogisticRegression`` (L2 penalty or none, binary or
    multinomial, ``class_weight``; not ``liblinear``) over all blocks at once. A pass:
    every block computes its part ``X_b d_b`` of the search direction's margins, a
    tree of adds sums them, the task that holds the targets runs an exact line search
    along that sum and returns the residuals ``r``, every block computes its gradient
    ``r^T X_b``, and the root takes the next L-BFGS direction (two-loop recursion,
    Nocedal & Wright, *Numerical Optimization*, algorithm 7.4). The blocks work in
    parallel; only n-vectors and parameter-sized vectors travel.

    Parameters
    ----------
    max_passes : int, default=500
        At most this many passes after the first (the gradient at zero); a
        ``ConvergenceWarning`` says when they were not enough.
    tol : float, default=1e-9
        Stop when the largest gradient entry of the objective (divided by the number
        of rows, or the summed class weights) is below ``tol`` times its value at zero.
        The estimator's own ``tol``, ``max_iter`` and ``solver`` are not used.

    Notes
    -----
    The fitted meta-estimator's ``history_`` has one row per pass (pass 0 is the
    gradient at zero): ``pass``, ``loss`` (the objective divided by the number of
    rows, or the summed class weights), ``grad_norm`` (its largest gradient entry),
    ``step`` (the line search's step length) and ``seconds`` (the passes' task
    time); ``n_rounds_`` counts the rows. The fused model is a plain
    ``LinearRegression`` / ``Ridge`` / ``LogisticRegression``.

    Examples
    --------
    >>> from daskfuse.vertical import GlobalGradient
    >>> GlobalGradient(max_passes=100)
    GlobalGradient(max_passes=100, tol=1e-09)
    """

    name = "gradient"

    def __init__(self, max_passes=500, tol=1e-9):
        self.max_passes = check_int(max_passes, "GlobalGradient(max_passes=...)", low=1)
        self.tol = check_real(tol, "GlobalGradient(tol=...)", low=0, low_open=True)

    def _params(self):
        return {"max_passes": self.max_passes, "tol": self.tol}

    def unsupported_reason(self, estimator):
        return _linear_reason(estimator, "the global-gradient fusion")


class ColumnStack(VerticalFusion):
    """Stacking over column blocks: a meta-learner on the blocks' out-of-fold outputs.

    Each block fits the estimator on its columns (all rows) and computes its
    out-of-fold output with ``sklearn.model_selection.cross_val_predict(cv=cv)``;
    the meta-learner is fitted on the blocks' outputs side by side. Applies to any
    classifier or regressor. The fused model is a
    :class:`~daskfuse.models.ColumnStackingClassifier` /
    :class:`~daskfuse.models.ColumnStackingRegressor`.

    Parameters
    ----------
    final_estimator : estimator or None, default=None
        The meta-learner (cloned); None is ``LogisticRegression()`` for classifiers
        and ``RidgeCV()`` for regressors.
    cv : int or cross-validation splitter, default=5
        The folds of ``cross_val_predict`` (an int: scikit-learn's (stratified)
        k-fold, unshuffled, so every block gets the same folds).
    stack_method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        Which block output feeds the meta-learner (classifiers); ``"auto"`` takes the
        first of these the estimator has.

    Examples
    --------
    >>> from daskfuse.vertical import ColumnStack
    >>> ColumnStack(cv=3)
    ColumnStack(final_estimator=None, cv=3, stack_method='auto')
    """

    name = "stack"

    def __init__(self, final_estimator=None, cv=5, stack_method="auto"):
        check_stack_params("ColumnStack", final_estimator, stack_method)
        if is_int(cv):
            if cv < 2:
                raise ValueError(f"ColumnStack(cv=...) must be >= 2 folds; got {cv}")
        elif not hasattr(cv, "split"):
            raise TypeError(
                "ColumnStack(cv=...) must be an int >= 2 or a cross-validation splitter; "
                f"got {cv!r}"
            )
        self.final_estimator = final_estimator
        self.cv = cv
        self.stack_method = stack_method

    def _params(self):
        return {
            "final_estimator": self.final_estimator,
            "cv": self.cv,
            "stack_method": self.stack_method,
        }

    def unsupported_reason(self, estimator):
        classifier = is_classifier(estimator)
        if not (classifier or is_regressor(estimator)):
            return "stacking needs a classifier or a regressor"
        try:
            resolve_stack_method(estimator, self.stack_method, classifier)
        except TypeError as exc:
            return str(exc)
        return None


VERTICAL_FUSIONS = {"gradient": GlobalGradient, "backfit": Backfit, "stack": ColumnStack}


def resolve_vertical_fusion(fusion, estimator):
    """The :class:`VerticalFusion` that ``fusion`` names for ``estimator``.

    Parameters
    ----------
    fusion : str or VerticalFusion
        ``"auto"`` (the global-gradient passes where they apply, else stacking),
        ``"gradient"``, ``"backfit"``, ``"stack"`` or an instance.
    estimator : estimator
        The unfitted template.

    Raises
    ------
    ValueError
        ``fusion`` is not one of these.
    FusionError
        The fusion cannot fuse this estimator.
    """
    can = [n for n, cls in VERTICAL_FUSIONS.items() if cls().unsupported_reason(estimator) is None]
    chosen = pick_strategy(
        fusion,
        base=VerticalFusion,
        names=VERTICAL_FUSIONS,
        auto=lambda: GlobalGradient() if "gradient" in can else ColumnStack(),
        expected="with partition=Columns(...), fusion must be 'auto', 'gradient', 'backfit', "
        "'stack' or a daskfuse.vertical.GlobalGradient / Backfit / ColumnStack instance (the "
        "row-wise fusions do not apply to column blocks)",
    )
    reason = chosen.unsupported_reason(estimator)
    if reason is not None:
        raise FusionError(
            f"fusion={chosen!r} cannot fuse {estimator!r} over column blocks: {reason}. "
            f"Vertical fusions that apply to {type(estimator).__name__}: "
            f"{', '.join(map(repr, can)) or 'none'}"
        )
    return chosen
