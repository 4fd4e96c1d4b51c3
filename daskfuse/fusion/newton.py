"""Global-gradient fusion: Newton passes over the persisted partitions (``fusion="newton"``).

For convex linear models the model fitted on all rows is reached exactly with only
summaries travelling. Each pass, every partition evaluates scikit-learn's own loss
(:class:`sklearn.linear_model._linear_loss.LinearModelLoss`, the objective its
``lbfgs`` and ``newton-cholesky`` solvers minimise) at the current parameters and
returns SUMS over its rows, unpenalised: the loss, the gradient and the Hessian. Sums
are associative, so the tree of ``combine`` tasks is exact for any ``split_every``; the
root adds the penalty once and takes a Newton step, as Spark MLlib's linear models
take L-BFGS steps over ``treeAggregate``.

For liblinear's SVMs with a squared loss (LinearSVC, LinearSVR) the loss is
liblinear's own (:class:`~daskfuse.fusion._loss.SquaredSVMLoss`), with its intercept
handling: a feature of value ``intercept_scaling`` whose weight is penalised.

The passes:

- pass 0 (the one-shot start): each partition that holds every class fits the
  estimator alone; the start is their row-weighted mean, or zeros where a partition
  cannot fit alone (a single class). The pass also counts the rows of each class (for
  ``class_weight="balanced"``) and the total sample weight. Where every partition
  fits alone (and without ``class_weight``), each also returns the gradient and
  Hessian sums at its own parameters: their sum is a quadratic model of the loss that
  gives a first Newton direction from the start, so pass 1 already tries the full step
  along it. Pass 1 also evaluates the exact gradient at the start: where the guessed
  full step fails the Armijo test, pass 2 takes a Newton step from the start (with the
  Hessian at the full step).
- then each pass evaluates the loss at the candidate points ``w + t d`` for every step
  length ``t`` in :data:`STEPS` (``d`` the last Newton direction) and the gradient and
  Hessian at the full step: the line search costs no extra pass where the full step
  is taken (the usual case close to the optimum). Where only a shorter step passes the
  Armijo test, the next pass evaluates the gradient and Hessian there. After a full
  Newton step the next pass evaluates the full step alone (close to the optimum it
  is taken again: quadratic convergence), and where it fails the Armijo test, the pass
  after tries every length along the same direction. All candidates' margins come from
  one product with the rows, ``X (w + t d) = X w + t X d``. The last pass also counts
  the training rows that the fused model (the full step) classifies right, so the fit
  needs no separate scoring pass for ``history_``, and every pass counts those the
  previous fused model (at ``w``) classifies right, the report's ``start_score``.
- a large partition fits its start and takes its Hessian on a sample of its rows
  (``sample_rows``): the start is refined by the passes anyway, and the Hessian costs
  ``rows x d^2`` against the gradient's ``rows x d`` and only shapes the step; the
  losses and the gradient, which the line search and the stopping test read, are exact
  on every row.

It stops on scikit-learn's ``lbfgs`` criterion: the largest absolute entry of the
gradient of scikit-learn's objective at most the estimator's ``tol``. Only
parameter-sized vectors and parameter x parameter matrices leave the partitions.

Above :data:`MAX_HESSIAN_PARAMS` parameters no partition computes or ships a
parameter x parameter matrix (pass 0 ships no local quadratic model, later passes
no Hessian sums): the root takes L-BFGS steps instead (Nocedal & Wright 2006,
algorithm 7.4; the pairs travel in the feedback), with the same candidate steps
evaluated in one pass; where none passes the Armijo test, the next pass tries the
direction shortened by the smallest step.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    GammaRegressor,
    LogisticRegression,
    PoissonRegressor,
    TweedieRegressor,
)
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.utils.class_weight import compute_class_weight

from .._adapters import stamp_inputs
from .._quiet import quiet_warnings
from .._validation import check_int
from ._loss import coef_rows, is_svm, linear_loss, margins, multinomial
from .base import Fuser

__all__ = ["MAX_HESSIAN_PARAMS", "STEPS", "Newton", "private_optional_fields"]

#: candidate step lengths along the Newton direction, evaluated in one pass
STEPS = (1.0, 0.5, 0.25, 0.1, 0.01)
_ARMIJO = 1e-4
#: the most passes a fit may take (the estimator's max_iter stops it first)
MAX_PASSES = 100_000
#: above this many parameters (features x coefficient rows) no partition ships a
#: parameters x parameters Hessian: the passes carry loss and gradient sums only and
#: the root takes L-BFGS steps (memory :data:`LBFGS_MEMORY`) instead of Newton steps
MAX_HESSIAN_PARAMS = 1000
LBFGS_MEMORY = 10
#: the default ``sample_rows`` of :class:`Newton`: a Hessian of 50 features from 16,384
#: to 32,767 rows per partition (over 100,000 in 8 partitions) shapes the step about as
#: well as one from every row, at a fraction of the ``rows x d^2`` products
SAMPLE_ROWS = 16_384
_GLMS = (PoissonRegressor, GammaRegressor, TweedieRegressor)
REQUIREMENT = (
    "newton needs a LogisticRegression, PoissonRegressor, GammaRegressor, "
    "TweedieRegressor, LinearSVC or LinearSVR"
)


@dataclass(frozen=True)
class _State:
    """What travels to every partition: the accepted point and the next direction."""

    w: np.ndarray
    direction: np.ndarray | None = None
    loss: float | None = None
    grad: np.ndarray | None = None
    class_weight: np.ndarray | None = None
    sw_sum: float | None = None
    n_iter: int = 0
    done: bool = False
    record: dict | None = None
    #: the direction came from pass 0's local quadratic models, not the exact gradient
    guessed: bool = False
    #: L-BFGS (many parameters): the last (step, gradient change) pairs, and the
    #: (point, gradient) that an accepted shorter step left, to pair with the next
    memory: tuple = ()
    anchor: tuple | None = None
    #: the candidate step lengths along ``direction`` that the pass evaluates: all of
    #: :data:`STEPS`, or the full step alone after a full Newton step (see next_state)
    steps: tuple = STEPS


#: the losses of liblinear's SVMs that are differentiable (squared)
_SQUARED = {LinearSVC: "squared_hinge", LinearSVR: "squared_epsilon_insensitive"}


def _unsupported_svm(estimator):
    squared = _SQUARED[type(estimator)]
    if estimator.loss != squared:
        return (
            f"newton needs loss={squared!r} for a {type(estimator).__name__}: its "
            f"loss={estimator.loss!r} is not differentiable where a row meets the margin"
        )
    if isinstance(estimator, LinearSVC) and estimator.penalty != "l2":
        return "newton needs penalty='l2' for a LinearSVC: the objective must be smooth"
    if isinstance(estimator, LinearSVC) and estimator.multi_class != "ovr":
        return "newton needs multi_class='ovr' for a LinearSVC (one-vs-rest problems)"
    return None


def _unsupported(estimator):
    if isinstance(estimator, _GLMS):
        return None  # both solvers minimise the one objective
    if type(estimator) in _SQUARED:
        return _unsupported_svm(estimator)
    if not isinstance(estimator, LogisticRegression):
        return REQUIREMENT
    if estimator.solver == "liblinear":
        return (
            "newton needs a LogisticRegression solver other than 'liblinear' "
            "(liblinear penalises the intercept)"
        )
    if _penalty_strength(estimator) is None:
        return "newton needs penalty='l2' or None (l1_ratio=0): the objective must be smooth"
    return None


def _penalty_strength(estimator):
    """``1/C`` (0 without a penalty), or None for a penalty newton cannot minimise."""
    penalty = estimator.penalty
    if penalty is None or not np.isfinite(estimator.C):
        return 0.0
    if penalty == "l2" or (penalty == "deprecated" and not estimator.l1_ratio):
        return 1.0 / estimator.C
    return None


def _theta(model, n_classes):
    """A fitted model's parameters in :class:`LinearModelLoss`'s flat layout."""
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=float))
    intercept = np.reshape(np.asarray(model.intercept_, dtype=float), -1)
    if is_svm(model):
        # liblinear's parameter is the weight of a feature of value intercept_scaling
        intercept = intercept / model.intercept_scaling
    parts = [coef, intercept[:, None]] if model.fit_intercept else [coef]
    theta = np.hstack(parts)
    k, order = coef_rows(model, n_classes)
    return theta.ravel(order=order) if k > 1 else theta[0]


def _targets(template, classes, y, class_weight, sample_weight=None):
    """``(y as the loss wants it, sample weights)`` of one partition: ``fit``'s
    ``sample_weight`` (where given) times the class weights, as scikit-learn weighs."""
    if classes is None:
        sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        return np.asarray(y, dtype=float), sw
    index = np.searchsorted(classes, y)
    sw = np.ones(len(y)) if class_weight is None else class_weight[index]
    if sample_weight is not None:
        sw = sw * sample_weight
    if len(classes) == 2:
        return (index == 1).astype(float), sw
    return index.astype(float), sw


def _first_summary(template, X, y, classes, sample_rows, sample_weight=None):
    """Pass 0: class counts, weight and (where it can fit alone) the local parameters.

    With ``sample_weight`` the class counts are total weights (scikit-learn's
    ``class_weight="balanced"`` counts so) and the local parameters are weighted by
    the partition's total weight, its ``weight``.
    """
    weight = len(X) if sample_weight is None else float(np.sum(sample_weight))
    counts = (
        None
        if classes is None
        else np.bincount(np.searchsorted(classes, y), weights=sample_weight, minlength=len(classes))
    )
    theta, taylor = None, (None, None, None)
    rows = _sample(len(X), sample_rows)
    if classes is not None and np.any(
        np.bincount(np.searchsorted(classes, y[rows]), minlength=len(classes)) == 0
    ):
        rows = slice(None)  # the sample missed a class: the start on every row
    if classes is None or np.all(counts > 0):
        fit_params = {}
        if sample_weight is not None:
            fit_params["sample_weight"] = np.asarray(sample_weight)[rows]
        with quiet_warnings():  # the start only needs to be close
            local = clone(template).fit(X[rows], y[rows], **fit_params)
        local_theta = _theta(local, None if classes is None else len(classes))
        theta = local_theta * weight
        if _ships_taylor(template, local_theta.size):
            taylor = _local_quadratic(
                template, local_theta, X, y, classes, sample_rows, sample_weight
            )
    return {
        "first": True,
        "n_features": X.shape[1],
        "rows": len(X),
        "weight": weight,
        "counts": counts,
        "theta": theta,
        # the local quadratic models (see _local_quadratic), summed in the tree
        **dict(zip(("taylor_g", "taylor_h", "taylor_h_theta"), taylor)),
    }


def _ships_hessian(n_params):
    """Whether the passes ship Hessian sums (else L-BFGS: :data:`MAX_HESSIAN_PARAMS`)."""
    return n_params <= MAX_HESSIAN_PARAMS


def _ships_taylor(template, n_params):
    """Whether pass 0 ships the local quadratic models (the same for every partition)."""
    return getattr(template, "class_weight", None) is None and _ships_hessian(n_params)


def private_optional_fields(template, classes, n_features):
    """Pass 0's fields that one partition leaves out (None) for a private reason, it
    cannot fit alone (a single class), with their shapes: :class:`~daskfuse.fusion.Secure`
    masks zeros and a flag in their place, so that no one learns which partition did."""
    n_classes = None if classes is None else len(classes)
    p = _n_params(template, {"n_features": n_features}, n_classes)
    fields = {"theta": (p,)}
    if _ships_taylor(template, p):
        fields.update(taylor_g=(p,), taylor_h=(p, p), taylor_h_theta=(p,))
    return fields


def _local_quadratic(template, theta, X, y, classes, sample_rows, sample_weight=None):
    """``(g, H, H theta)``: the loss sums' gradient and Hessian at the partition's own
    parameters. Their sums give the root a quadratic model of the loss at any point
    ``w`` (gradient about ``g + H w - H theta``), hence a first Newton direction from
    the one-shot start without a pass to evaluate the gradient there."""
    loss = linear_loss(template, classes)
    target, sw = _targets(template, classes, y, None, sample_weight)
    X = np.asarray(X, dtype=float)
    raw = loss.weight_intercept_raw(theta, X)[2]
    grad, hess = _gradient_hessian_sums(loss, theta, X, target, sw, raw, sample_rows)
    return grad, hess, hess @ theta


def _gradient_hessian_sums(loss, w, X, target, sw, raw, sample_rows, hessian=True):
    """``(gradient, Hessian)`` of the loss summed over a partition's rows at ``w``.

    The gradient is exact, on every row. The Hessian of a partition with more than
    ``sample_rows`` rows is estimated from ``sample_rows`` to twice as many evenly
    spaced rows (scaled to the partition's sample weight): the Hessian only shapes the
    step, while the stopping test reads the exact gradient, so the fixed point is the
    same (sub-sampled Newton, Roosta-Khorasani and Mahoney 2019, "Sub-sampled Newton
    methods", Math. Program. 174), at a fraction of the cost of the ``d x d`` products.
    Without ``hessian`` (many parameters: L-BFGS passes) no parameters x parameters
    matrix is computed or shipped: the Hessian is None.
    """
    total = float(np.sum(sw))
    if not hessian:
        grad = loss.gradient(w, X, target, sw, raw_prediction=raw)
        return total * np.asarray(grad).ravel(), None
    rows = _sample(len(X), sample_rows)
    if rows.step is None:
        grad, hess, _ = loss.gradient_hessian(w, X, target, sw, raw_prediction=raw)
        return total * np.asarray(grad).ravel(), total * hess
    grad = loss.gradient(w, X, target, sw, raw_prediction=raw)
    # X's sample is a view (BLAS takes it strided); the loss's per-row arrays must be
    # contiguous, and are small
    target, sw, raw = (np.ascontiguousarray(a[rows]) for a in (target, sw, raw))
    _, hess, _ = loss.gradient_hessian(w, X[rows], target, sw, raw_prediction=raw)
    return total * np.asarray(grad).ravel(), total * hess


def _sample(n, sample_rows):
    """The rows of a partition of ``n`` rows that its start and Hessian use: every
    ``n // sample_rows``-th row (``sample_rows`` to twice as many), or all of them
    (``slice(None)``). A slice, so that the sample is a view of the rows, not a copy
    (NumPy hands a strided view to BLAS as it is)."""
    if sample_rows is None or n <= sample_rows:
        return slice(None)
    return slice(0, n, n // sample_rows)


def _pass_summary(template, state, X, y, classes, sample_rows, sample_weight=None):
    """A later pass: loss sums at every candidate point, gradient and Hessian sums at
    the first (the full step, or the accepted point when there is no direction)."""
    loss = linear_loss(template, classes)
    target, sw = _targets(template, classes, y, state.class_weight, sample_weight)
    X = np.asarray(X, dtype=float)
    # the margins are linear in the parameters: one product with X gives every
    # candidate's, X (w + t d) = X w + t X d
    if state.direction is None:
        points = [state.w]
        raws = margins(loss, points, X)
        raw = raws[0]
    else:
        raw, along = margins(loss, [state.w, state.direction], X)
        points = [state.w + t * state.direction for t in state.steps]
        raws = [raw + t * along for t in state.steps]
    total = float(np.sum(sw))
    start_grad = None
    if state.guessed:
        # the accepted point's loss is not known yet: the Armijo test needs it; and
        # its exact gradient, where the guessed direction falls short (the Hessian a
        # step away stands in for its own, as a sampled one does)
        points, raws = [*points, state.w], [*raws, raw]
        start_grad = total * np.ravel(loss.gradient(state.w, X, target, sw, raw_prediction=raw))
    losses = [total * loss.loss(p, X, target, sw, raw_prediction=r) for p, r in zip(points, raws)]
    grad, hess = _gradient_hessian_sums(
        loss, points[0], X, target, sw, raws[0], sample_rows, _ships_hessian(state.w.size)
    )
    sums = _PassSums(
        first=False,
        losses=np.array(losses),
        grad=grad,
        hess=hess,
        start_grad=start_grad,
        sw=total,
        rows=len(X),
        correct=_correct(raws[0], y, classes),
        state=state,
    )
    # the previous pass's fused model is the one at state.w: its accuracy on these
    # rows comes from the margins at hand, not from a predict over them again
    # (where the pass evaluated that point alone, its count is the pass's own)
    start = sums["correct"] if raws[0] is raw else _correct(raw, y, classes)
    sums.report_start_score = None if start is None else start / len(X)
    return sums


class _PassSums(dict):
    """A later pass's sums of one partition (a dict, summed key by key in the tree),
    with ``report_start_score`` for the partition's report (see ``Fuser.summarize``)."""


def _correct(raw, y, classes):
    """Rows that the model with margins ``raw`` classifies right (as its ``predict``),
    or None for a regressor (its score, D², is not a sum over partitions)."""
    if classes is None:
        return None
    index = raw.argmax(axis=1) if raw.ndim == 2 else (raw > 0).astype(int)
    return int(np.sum(np.asarray(classes)[index] == np.asarray(y)))


def _combine(summaries):
    out = dict(summaries[0])
    for s in summaries[1:]:
        for key, value in s.items():
            if key in ("first", "state", "n_features"):
                continue
            if value is None or out[key] is None:
                out[key] = None
            else:
                out[key] = out[key] + value
    return out


class _Objective:
    """Scikit-learn's objective from the partitions' sums: penalty added at the root."""

    def __init__(self, template, w_size, n_classes):
        if is_svm(template):
            # liblinear: C * sum(loss) + |w|^2 / 2, the intercept's weight included
            self.strength, self.per_row = 1.0 / template.C, False
        elif isinstance(template, LogisticRegression):
            self.strength, self.per_row = _penalty_strength(template), False
        else:
            self.strength, self.per_row = template.alpha, True
        self.mask = np.ones(w_size)
        if template.fit_intercept and not is_svm(template):
            k = n_classes if multinomial(template, n_classes) else 1
            self.mask[-k:] = 0.0

    def __call__(self, sums_loss, grad, hess, w, sw_sum):
        lam = self.strength * (sw_sum if self.per_row else 1.0)
        wp = self.mask * w
        f = (sums_loss + 0.5 * lam * wp @ wp) / sw_sum
        if grad is None:
            return f, None, None
        if hess is None:  # L-BFGS: no Hessian sums
            return f, (grad + lam * wp) / sw_sum, None
        return f, (grad + lam * wp) / sw_sum, (hess + lam * np.diag(self.mask)) / sw_sum


def _lbfgs_direction(grad, memory):
    """The L-BFGS direction ``-H grad`` (two-loop recursion, Nocedal & Wright 2006,
    algorithm 7.4) from the ``(s, y)`` pairs in ``memory``, oldest first; without
    pairs, the steepest descent scaled to unit length."""
    if not memory:
        return -grad / max(float(np.linalg.norm(grad)), np.finfo(float).tiny)
    q, alphas = grad.copy(), []
    for s, y in reversed(memory):
        alpha = (s @ q) / (y @ s)
        q -= alpha * y
        alphas.append(alpha)
    s, y = memory[-1]
    r = (s @ y) / (y @ y) * q
    for (s, y), alpha in zip(memory, reversed(alphas)):
        r += (alpha - (y @ r) / (y @ s)) * s
    return -r


def _remember(memory, anchor, w, g):
    """``memory`` with the pair from ``anchor`` (an earlier point and its gradient) to
    ``(w, g)``, where it has positive curvature; at most :data:`LBFGS_MEMORY` pairs."""
    if anchor is None or anchor[1] is None:
        return memory
    s, y = w - anchor[0], g - anchor[1]
    if s @ y <= 1e-10 * np.linalg.norm(s) * np.linalg.norm(y):
        return memory
    return (*memory, (s, y))[-LBFGS_MEMORY:]


def _next_direction(state, step, w, g, h):
    """``(direction, memory)`` from the point ``w`` reached by ``step``: Newton's where
    the Hessian sums came, else L-BFGS's."""
    if h is not None:
        return _direction(g, h), state.memory
    anchor = (state.w, state.grad) if step == 1.0 else state.anchor
    memory = _remember(state.memory, anchor, w, g)
    return _lbfgs_direction(g, memory), memory


def _direction(grad, hess):
    # least squares: the multinomial Hessian is singular along the common shift of
    # the classes' parameters, and the least-norm step keeps them centred
    return scipy.linalg.lstsq(hess, -grad)[0]


def _start(summary, template, classes):
    """The state after pass 0: the one-shot start, the class weights, the weight sum."""
    n_classes = None if classes is None else len(classes)
    if _all_finite(summary["theta"]):
        w = summary["theta"] / summary["weight"]
        if multinomial(template, n_classes) and template.fit_intercept:
            w[-n_classes:] -= np.mean(w[-n_classes:])
    else:
        w = np.zeros(_n_params(template, summary, n_classes))
    class_weight = None
    if classes is not None and template.class_weight is not None:
        counts = summary["counts"]
        if template.class_weight == "balanced":
            class_weight = counts.sum() / (len(classes) * counts)
        else:
            class_weight = compute_class_weight(template.class_weight, classes=classes, y=classes)
    record = {"loss": None, "grad_norm": None, "step": None}
    unguessed = _State(w=w, class_weight=class_weight, record=record)
    taylor = (summary["taylor_g"], summary["taylor_h"], summary["taylor_h_theta"])
    if not _all_finite(summary["theta"]) or not all(_all_finite(t) for t in taylor):
        # a partition could not fit alone, or its local quadratic model overflowed
        # (a log link far from its rows): the next pass evaluates the gradient at w
        return unguessed
    # every partition fitted alone: a first direction from their quadratic models
    g, h, h_theta = taylor
    objective = _Objective(template, w.size, n_classes)
    _, grad, hess = objective(0.0, g - h_theta + h @ w, h, w, float(summary["weight"]))
    if not (_all_finite(grad) and _all_finite(hess)):
        return unguessed
    return _State(
        w=w,
        direction=_direction(grad, hess),
        grad=grad,
        class_weight=class_weight,
        record=record,
        guessed=True,
        # a guessed direction that falls short of the full step is not searched:
        # the pass evaluates the exact gradient at the start as well (next_state)
        steps=(1.0,),
    )


def _n_params(template, summary, n_classes):
    n_features = summary["n_features"]
    per_row = n_features + int(template.fit_intercept)
    return per_row * coef_rows(template, n_classes)[0]


def _can_shrink(state):
    """Whether the direction is still longer than rounding at the point's scale."""
    scale = max(float(np.linalg.norm(state.w)), 1.0)
    return float(np.linalg.norm(state.direction)) > 1e3 * np.finfo(float).eps * scale


def _accept(state, f_steps, slope):
    """The longest candidate step that passes the Armijo test, or None."""
    for t, f_t in zip(state.steps, f_steps):
        if f_t <= state.loss + _ARMIJO * t * slope:
            return t
    # at the optimum the decrease drowns in rounding: the full step is as good
    if abs(slope) <= 64 * np.finfo(float).eps * max(abs(state.loss), 1.0):
        return 1.0
    return None


def _all_finite(values):
    """Whether ``values`` are there (not None) and all finite (a step or a local model
    that overflows the link gives infinite sums)."""
    return values is not None and bool(np.all(np.isfinite(values)))


def _no_step(summary, state):
    """The state after a pass in which no candidate step passed the Armijo test."""
    record = {"loss": state.loss, "grad_norm": None, "step": 0.0}
    if summary["state"].guessed:
        # the guessed direction does not lower the loss: evaluate the gradient
        return dataclasses.replace(state, direction=None, record=record)
    if state.steps != STEPS:
        # only the full step was tried (the last pass took one): try every length
        return dataclasses.replace(state, steps=STEPS, record=record)
    if summary["hess"] is None and _can_shrink(state):
        # L-BFGS: the direction's scale is a guess; try shorter steps next pass
        return dataclasses.replace(state, direction=STEPS[-1] * state.direction, record=record)
    warnings.warn(
        "newton: no step along the Newton direction lowers the loss; stopping",
        ConvergenceWarning,
        stacklevel=3,
    )
    return dataclasses.replace(state, direction=None, done=True)


def _stops(template, g_max, n_iter):
    """Whether the fit stops at a point whose largest gradient entry is ``g_max``
    after ``n_iter`` Newton steps: the estimator's ``tol``, or its ``max_iter``."""
    if g_max <= template.tol:
        return True
    if n_iter >= template.max_iter:
        warnings.warn(
            f"newton stopped after max_iter={template.max_iter} steps with the largest "
            f"gradient entry {g_max:.3g} > tol={template.tol}; increase max_iter",
            ConvergenceWarning,
            stacklevel=3,
        )
        return True
    return False


def next_state(summary, template, classes):
    """The root's Newton step: the state the next pass starts from."""
    if summary["first"]:
        return _start(summary, template, classes)
    start = time.perf_counter()
    state = summary["state"]
    n_classes = None if classes is None else len(classes)
    objective = _Objective(template, state.w.size, n_classes)
    sw_sum = summary["sw"]
    if state.direction is None:
        step, n_iter, w = 0.0, state.n_iter, state.w
    else:
        losses = [
            objective(s, None, None, state.w + t * state.direction, sw_sum)[0]
            for t, s in zip(state.steps, summary["losses"])
        ]
        if state.guessed:
            f_w = objective(summary["losses"][-1], None, None, state.w, sw_sum)[0]
            state = dataclasses.replace(state, loss=f_w, guessed=False)
        step = _accept(state, losses, float(state.grad @ state.direction))
        if step != 1.0 and summary["state"].guessed and _all_finite(summary["hess"]):
            # the guessed direction falls short of a full step: the pass evaluated
            # the exact gradient at the start too, so step from there (with the
            # Hessian a step away, unless the full step overflowed it)
            step, n_iter, w = 0.0, state.n_iter, state.w
            summary = {
                **summary,
                "losses": summary["losses"][-1:],
                "grad": summary["start_grad"],
                "correct": None,  # counted at the full step
            }
        elif step is None:
            return _no_step(summary, state)
        else:
            n_iter, w = state.n_iter + 1, state.w + step * state.direction
        if 0.0 < step < 1.0:
            # the gradient and Hessian are known at the full step only: evaluate here
            record = {"loss": losses[state.steps.index(step)], "grad_norm": None, "step": step}
            return dataclasses.replace(
                state,
                w=w,
                direction=None,
                n_iter=n_iter,
                record=record,
                anchor=(state.w, state.grad),
                steps=STEPS,
            )
    f, g, h = objective(summary["losses"][0], summary["grad"], summary["hess"], w, sw_sum)
    g_max = float(np.max(np.abs(g)))
    done = _stops(template, g_max, n_iter)
    record = {
        "loss": float(f),
        "grad_norm": g_max,
        "step": step,
        "root_seconds": time.perf_counter() - start,
    }
    if done and summary["correct"] is not None:
        # the fused model is the point this pass evaluated: its accuracy on all
        # training rows came with the pass, so run_passes needs no scoring pass
        record["train_score"] = summary["correct"] / summary["rows"]
    direction, memory = (None, state.memory) if done else _next_direction(state, step, w, g, h)
    return dataclasses.replace(
        state,
        w=w,
        direction=direction,
        memory=memory,
        anchor=None,
        # after a full Newton step the next is full too (quadratic convergence): the
        # pass evaluates it alone, and all of STEPS again only where it fails Armijo
        steps=(1.0,) if step == 1.0 and h is not None else STEPS,
        loss=float(f),
        grad=g,
        sw_sum=sw_sum,
        n_iter=n_iter,
        done=done,
        record=record,
    )


def build_model(template, w, classes, n_iter, meta):
    """A fitted clone of ``template`` with the flat parameters ``w``."""
    model = clone(template)
    n_classes = None if classes is None else len(classes)
    k, order = coef_rows(template, n_classes)
    theta = w.reshape((k, -1), order=order)
    coef = theta[:, : meta["n_features_in_"]]
    intercept = theta[:, -1] if template.fit_intercept else np.zeros(k)
    if is_svm(template):
        return _build_svm(model, coef, intercept, classes, n_iter, meta)
    if classes is None:
        model.coef_, model.intercept_ = coef[0].copy(), float(intercept[0])
        model._base_loss = model._get_loss()
        model.n_iter_ = int(n_iter)
    else:
        model.coef_, model.intercept_ = coef.copy(), intercept.copy()
        model.classes_ = np.asarray(classes)
        model.n_iter_ = np.array([int(n_iter)], dtype=np.int32)
    return stamp_inputs(model, meta)


def _build_svm(model, coef, intercept, classes, n_iter, meta):
    """A LinearSVC's or LinearSVR's fitted attributes, as liblinear's ``fit`` sets them."""
    intercept = model.intercept_scaling * intercept if model.fit_intercept else 0.0
    if classes is None:
        model.coef_ = coef[0].copy()
        model.intercept_ = np.atleast_1d(intercept) if model.fit_intercept else 0.0
    else:
        model.coef_, model.intercept_ = coef.copy(), intercept
        model.classes_ = np.asarray(classes)
    model.n_iter_ = int(n_iter)
    return stamp_inputs(model, meta)


class Newton(Fuser):
    """Global-gradient fusion: exact Newton passes for convex linear models.

    The fused model minimises exactly scikit-learn's objective on all rows (the same
    penalty scaling by the number of rows or the sample weights, intercept unpenalised,
    ``class_weight`` as sample weights), so it equals ``estimator.fit(all rows)`` to
    the estimator's ``tol``. See :mod:`daskfuse.fusion.newton` for the passes.

    It applies to :class:`~sklearn.linear_model.LogisticRegression` (binary and
    multinomial, ``penalty`` l2 or None, any solver but liblinear),
    :class:`~sklearn.linear_model.PoissonRegressor`,
    :class:`~sklearn.linear_model.GammaRegressor`,
    :class:`~sklearn.linear_model.TweedieRegressor`, and liblinear's SVMs with a
    squared loss: :class:`~sklearn.svm.LinearSVC` (``loss="squared_hinge"``,
    ``penalty="l2"``, one-vs-rest, ``dual`` either: the primal optimum is the same)
    and :class:`~sklearn.svm.LinearSVR` (``loss="squared_epsilon_insensitive"``).
    For those it minimises liblinear's objective, ``C * sum(loss) + |w|^2 / 2`` with
    the intercept a feature of value ``intercept_scaling`` whose weight is penalised,
    the class weights of one-vs-rest as liblinear's (a row's class weight counts in
    its own class's problem only), and the generalised Hessian of the squared hinge;
    the k one-vs-rest problems travel in one pass. The plain ``hinge`` and
    ``epsilon_insensitive`` losses are refused: they are not differentiable.
    Partitions may hold a single class. ``rounds`` and the meta-estimator's ``tol``
    do not limit it: it runs until the estimator's own ``tol`` (largest absolute
    gradient entry, the ``lbfgs`` criterion) or ``max_iter`` Newton steps. The fused
    model's ``n_iter_`` counts the Newton steps; the meta-estimator's ``history_``
    gains ``loss``, ``grad_norm`` and ``step`` per pass.

    Parameters
    ----------
    sample_rows : int or None, default=65536
        A partition with more rows fits its one-shot start and takes its Hessian on
        about this many of them, evenly spaced (see :func:`_gradient_hessian_sums`);
        the loss and the gradient, which the line search and the stopping test read,
        stay exact on every row, so the fused model is the same. A sampled Hessian
        makes each step a little less exact (the gradient shrinks by about the
        Hessian's relative sampling error per pass, rather than quadratically), so a
        very tight ``tol`` may take a pass more; each pass costs a fraction. None:
        the start and the Hessian on every row.
    """

    name = "newton"
    requirement = REQUIREMENT

    def __init__(self, *, sample_rows=SAMPLE_ROWS):
        self.sample_rows = check_int(sample_rows, "Newton(sample_rows=...)", low=1, allow_none=True)

    def _params(self):
        return {} if self.sample_rows == SAMPLE_ROWS else {"sample_rows": self.sample_rows}

    def supports(self, estimator):
        return _unsupported(estimator) is None

    def unsupported_reason(self, estimator):
        return _unsupported(estimator)

    def tags(self, estimator):
        return dataclasses.replace(
            super().tags(estimator),
            needs_fit=False,
            needs_classes=is_classifier(estimator),
            single_class_partitions=True,
            rounds_reason=None,
            given_weights_reason="newton evaluates the loss on the partitions' rows",
            # the loss, gradient and Hessian sums are weighted as scikit-learn weighs;
            # its passes are its own (rounds do not drive them)
            sample_weight_reason=None,
            weighted_rounds_reason=None,
            # a pass's sums: a worker thread's partitions are summed in one task
            grouped_passes=True,
        )

    def passes(self, rounds):
        # the estimator's max_iter ends the loop (next_state), not rounds
        return MAX_PASSES

    def local_fit(self, template, feedback, X, y, info):
        # nothing is trained: the partition evaluates the loss at the feedback's point
        return feedback

    def summarize(self, estimator, X, y, info):
        template, classes = info["template"], info["classes"]
        weights = info.get("sample_weight")
        if estimator is None:
            return _first_summary(template, X, y, classes, self.sample_rows, weights)
        return _pass_summary(template, estimator, X, y, classes, self.sample_rows, weights)

    def combine(self, summaries):
        return _combine(summaries)

    def finalize(self, summary, template, meta):
        classes = meta["classes"]
        state = next_state(summary, template, classes)
        # the root's summary is its own: feedback (same task) reads the step from it
        summary["next"] = state
        return build_model(template, state.w, classes, state.n_iter, meta)

    def feedback(self, fused, summary):
        return summary["next"]

    def change(self, previous, current):
        return 0.0 if current.done else float("inf")

    def pass_record(self, feedback):
        """The history entries of one pass: ``loss``, ``grad_norm`` and ``step``."""
        return dict(feedback.record or {})
