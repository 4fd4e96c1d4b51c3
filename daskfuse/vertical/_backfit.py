"""Backfitting's block tasks: the block solves, a round's step and the fused model."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import logsumexp, softmax
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.class_weight import compute_class_weight

from .._adapters import stamp_inputs
from .._graph import _worker_name
from ._blocks import block_matrix, check_target

#: gradient tolerance and iteration cap of the logistic block solves: tight,
#: so that the rounds approach the exact optimum rather than a solver's stopping point
INNER_GTOL = 1e-10
INNER_MAX_ITER = 1000
#: logistic block problems with at most this many parameters are solved by Newton's
#: method (Hessian of that size, n times its size to build), larger ones by L-BFGS
NEWTON_MAX_PARAMS = 400


def _problem(estimator):
    """``(loss, penalty, fit_intercept)`` of a supported linear estimator.

    ``loss`` is ``"squares"`` (penalty: ``alpha``) or ``"logistic"`` (penalty: ``C``,
    ``inf`` for none).
    """
    params = estimator.get_params(deep=False)
    if isinstance(estimator, LogisticRegression):
        C = np.inf if params["penalty"] is None else float(params["C"])
        return "logistic", C, bool(params["fit_intercept"])
    alpha = float(np.ravel(params["alpha"])[0]) if isinstance(estimator, Ridge) else 0.0
    return "squares", alpha, bool(params["fit_intercept"])


@dataclass
class BackfitBlock:
    """One block's data for the rounds; holds its raw columns, so stays with the block."""

    index: int
    #: the columns, with a last column of ones for a logistic model with intercept
    #: (made once, not in every Newton step); ``X`` is a view without it
    design: np.ndarray
    target: np.ndarray
    weights: np.ndarray | None = None
    mean: np.ndarray | None = None
    eigvals: np.ndarray | None = None
    eigvecs: np.ndarray | None = None
    n_columns: int = 0

    @property
    def X(self):
        return self.design[:, : self.n_columns]


def block_target(spec, y):
    """The targets as an n x k matrix (one-hot for classes) and the class weights or None."""
    if _problem(spec.estimator)[0] == "squares":
        return np.asarray(y, dtype=np.float64).reshape(len(y), -1), None
    labels = np.searchsorted(spec.classes, y)
    if len(spec.classes) == 2:
        target = (labels == 1).astype(np.float64)[:, None]
    else:
        target = np.zeros((len(y), len(spec.classes)))
        target[np.arange(len(y)), labels] = 1.0
    class_weight = spec.estimator.get_params()["class_weight"]
    weights = None
    if class_weight is not None:
        weights = compute_class_weight(class_weight, classes=spec.classes, y=y)[labels]
    return target, weights


def prepare_block(spec, index, y, *pieces):
    """Block ``index``'s columns and what every round reuses (a ``daskfuse-block`` task)."""
    y = check_target(y)
    X = block_matrix(spec, index, pieces, len(y))
    loss, _, fit_intercept = _problem(spec.estimator)
    target, weights = block_target(spec, y)
    if loss == "logistic":
        design = np.hstack([X, np.ones((len(X), 1))]) if fit_intercept else X
        return BackfitBlock(index, design, target, weights=weights, n_columns=X.shape[1])
    mean = X.mean(axis=0) if fit_intercept else np.zeros(X.shape[1])
    centred = X - mean
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred)
    return BackfitBlock(
        index, X, target, mean=mean, eigvals=eigvals, eigvecs=eigvecs, n_columns=X.shape[1]
    )


def _solve_squares(block, offset, alpha, fit_intercept):
    r = block.target - offset
    centre = r.mean(axis=0) if fit_intercept else np.zeros(r.shape[1])
    g = block.X.T @ (r - centre)
    denom = block.eigvals + alpha
    # alpha = 0 (LinearRegression): the pseudo-inverse on the block's column space
    cut = denom > max(block.eigvals.max(initial=0.0), 0.0) * len(denom) * np.finfo(float).eps
    inv = np.where(cut, 1.0 / np.where(cut, denom, 1.0), 0.0)
    w = block.eigvecs @ (inv[:, None] * (block.eigvecs.T @ g))
    intercept = centre - block.mean @ w
    return w.T, intercept, 0


def _logistic_terms(z, target, weights):
    """The summed (weighted) log-loss at the predictor ``z``, the residuals and ``p``."""
    if target.shape[1] == 1:
        # one exponential for both: log(1 + e^z) = max(z, 0) + log1p(e^-|z|) and
        # sigmoid(z) = 1 / (1 + e^-z) or e^z / (1 + e^z), whichever does not overflow
        z1 = z[:, 0]
        e = np.exp(-np.abs(z1))
        losses = np.maximum(z1, 0.0) + np.log1p(e) - target[:, 0] * z1
        prob = (np.where(z1 >= 0, 1.0, e) / (1.0 + e))[:, None]
    else:
        losses = logsumexp(z, axis=1) - np.sum(target * z, axis=1)
        prob = softmax(z, axis=1)
    residual = prob - target
    if weights is not None:
        losses = losses * weights
        residual = residual * weights[:, None]
    return losses.sum(), residual, prob


def _solve_logistic(block, offset, C, fit_intercept, coef0, intercept0):
    """Minimise the logistic objective over one block's coefficients and the intercept.

    scikit-learn's objective ``C * sum(w_i * loss_i) + ||W||^2 / 2`` (intercept
    unpenalised), divided by ``C * sum(w_i)`` (as scikit-learn's own solvers do) for
    a well-scaled problem, with the other blocks' part of the predictor fixed in
    ``offset``. Newton's method with a backtracking line search where the Hessian is
    small (it converges in a few iterations from the previous round's coefficients,
    and to full precision), else L-BFGS.
    """
    A, target = block.design, block.target
    k, p = coef0.shape
    total = float(len(A) if block.weights is None else block.weights.sum())
    l2 = 0.0 if np.isinf(C) else 1.0 / (C * total)
    q = A.shape[1]
    penalty = np.full(q, l2)
    if fit_intercept:
        penalty[-1] = 0.0
    theta0 = np.hstack([coef0, intercept0[:, None]]) if fit_intercept else coef0.copy()

    def value_grad(theta):
        z = offset + A @ theta.T
        loss, residual, prob = _logistic_terms(z, target, block.weights)
        value = loss / total + 0.5 * np.sum(penalty * theta * theta)
        return value, residual.T @ A / total + penalty * theta, (z, loss, prob)

    if k * q <= NEWTON_MAX_PARAMS:
        theta, n_iter, (z, loss, _) = _newton(value_grad, theta0, A, block.weights, total, penalty)
    else:

        def fun(flat):
            value, grad, _ = value_grad(flat.reshape(k, q))
            return value, grad.ravel()

        result = optimize.minimize(
            fun,
            theta0.ravel(),
            method="L-BFGS-B",
            jac=True,
            options={
                "maxiter": INNER_MAX_ITER,
                "gtol": INNER_GTOL,
                "ftol": 64 * np.finfo(float).eps,
                "maxls": 50,
            },
        )
        theta, n_iter = result.x.reshape(k, q), int(result.nit)
        _, _, (z, loss, _) = value_grad(theta)
    W = theta[:, :p]
    b = theta[:, p] if fit_intercept else np.zeros(k)
    # the new linear predictor and the data term come with the solution
    return W, b, n_iter, z, (loss if np.isinf(C) else C * loss)


def _hessian(prob, A, weights, total, penalty):
    """Hessian of the scaled logistic objective in the layout ``(class, column)``."""
    k, q = prob.shape[1], A.shape[1]
    if k == 1:
        curvature = {(0, 0): prob[:, 0] * (1 - prob[:, 0])}
    else:
        curvature = {
            (c, d): prob[:, c] * ((c == d) - prob[:, d]) for c in range(k) for d in range(c, k)
        }
    H = np.zeros((k * q, k * q))
    for (c, d), D in curvature.items():
        if weights is not None:
            D = D * weights
        block = A.T @ (D[:, None] * A) / total
        H[c * q : (c + 1) * q, d * q : (d + 1) * q] = block
        H[d * q : (d + 1) * q, c * q : (c + 1) * q] = block.T
    H[np.diag_indices_from(H)] += np.tile(penalty, k)
    return H


def _newton(value_grad, theta, A, weights, total, penalty):
    value, grad, extra = value_grad(theta)
    n_iter = 0
    while n_iter < INNER_MAX_ITER and np.max(np.abs(grad)) > INNER_GTOL:
        H = _hessian(extra[2], A, weights, total, penalty)
        # least squares: the Hessian is singular along the softmax's shift (and
        # without a penalty); the minimum-norm step stays off that direction
        step = -np.linalg.lstsq(H, grad.ravel(), rcond=None)[0].reshape(theta.shape)
        slope = float(np.sum(grad * step))
        # -slope (the Newton decrement) is twice the decrease a full step promises:
        # below the precision of the objective there is nothing left to gain
        if not -slope > 4 * np.finfo(float).eps * max(abs(value), np.finfo(float).tiny):
            break
        t = 1.0
        while t > 1e-12:
            new_value, new_grad, new_extra = value_grad(theta + t * step)
            if new_value <= value + 1e-4 * t * slope and new_value < value:
                break
            t *= 0.5
        else:  # no decrease left at machine precision: converged
            break
        theta, value, grad, extra = theta + t * step, new_value, new_grad, new_extra
        n_iter += 1
    return theta, n_iter, extra


def backfit_step(spec, round_, block, previous, own):
    """Block ``b``'s update in one round (a ``daskfuse-step`` task).

    Parameters
    ----------
    spec : VerticalSpec
    round_ : int
    block : BackfitBlock
        The block's columns and targets (on the block's worker).
    previous : tuple or None
        The output of the step just before (the previous block's, or the last
        block's of the previous round): the whole model's linear predictor and
        intercept, the log of the steps so far and whether the rounds have
        converged. None at the very first step.
    own : tuple or None
        This block's output of the previous round (its coefficients, on the same
        worker); None in the first round.

    Returns
    -------
    coef, carry, log, done
        The block's coefficients (k x p_b); ``(eta, intercept)``, the predictor
        (n x k, the only n-sized thing that leaves the block) and intercept (k);
        the log of every step (small dicts: the convergence test and the reports);
        and whether the rounds had converged, in which case the step passed its
        inputs through. The first block of a round tests the previous round.
    """
    with _one_blas_thread():
        return _backfit_step(spec, round_, block, previous, own)


_BLAS = {"lock": threading.Lock(), "users": 0, "limiter": None, "controller": None}


@contextmanager
def _one_blas_thread():
    """Run a block step with one BLAS thread.

    A step's BLAS calls are small (a block's columns by an n-vector) and run
    thousands of times; under the sync or threads scheduler, OpenBLAS's own threads
    then only contend with the scheduler's (on a busy 2-core machine one logistic
    block solve took 100 ms with two BLAS threads, 8 ms with one). The limit is
    process-wide, so concurrent steps share one: the last to finish restores the
    original. Distributed workers start with one BLAS thread already.
    """
    state = _BLAS
    with state["lock"]:
        if state["users"] == 0:
            if state["controller"] is None:
                from threadpoolctl import ThreadpoolController

                state["controller"] = ThreadpoolController()
            state["limiter"] = state["controller"].limit(limits=1, user_api="blas")
        state["users"] += 1
    try:
        yield
    finally:
        with state["lock"]:
            state["users"] -= 1
            if state["users"] == 0:
                state["limiter"].restore_original_limits()
                state["limiter"] = None


def _backfit_step(spec, round_, block, previous, own):
    start = time.perf_counter()
    n, p = block.X.shape
    k = block.target.shape[1]
    if previous is None:
        carry, log, done = (np.zeros((n, k)), np.zeros(k)), [], False
    else:
        _, carry, log, done = previous
        n_blocks = len(spec.groups)
        if block.index == 0 and not done and len(log) >= n_blocks:
            done = round_summary(log[-n_blocks:], spec.estimator)["max_change"] < spec.fusion.tol
    coef_old = np.zeros((k, p)) if own is None else own[0]
    if done:
        return coef_old, carry, log, True
    eta, intercept = carry
    loss, penalty, fit_intercept = _problem(spec.estimator)
    # the block's own part is recomputed rather than kept: one n-vector less per block
    offset = eta - block.X @ coef_old.T - intercept
    if loss == "squares":
        coef, new_intercept, n_iter = _solve_squares(block, offset, penalty, fit_intercept)
        eta = offset + block.X @ coef.T + new_intercept
        data_loss = float(np.sum((block.target - eta) ** 2))
    else:
        coef, new_intercept, n_iter, eta, data_loss = _solve_logistic(
            block, offset, penalty, fit_intercept, coef_old, intercept
        )
    change = max(
        float(np.max(np.abs(coef - coef_old), initial=0.0)),
        float(np.max(np.abs(new_intercept - intercept), initial=0.0)),
    )
    info = {
        "block": block.index,
        "round": round_,
        "change": change,
        "scale": max(
            float(np.max(np.abs(coef), initial=0.0)),
            float(np.max(np.abs(new_intercept), initial=0.0)),
        ),
        "sq_norm": float(np.sum(coef * coef)),
        "loss": data_loss,
        "n_iter": n_iter,
        "rows": n,
        "seconds": time.perf_counter() - start,
        "worker": _worker_name(),
        "intercept": new_intercept,
    }
    return coef, (eta, new_intercept), [*log, info], False


def round_summary(infos, estimator):
    """Convergence figures of one round from its steps' infos."""
    loss, penalty, _ = _problem(estimator)
    scale = max(i["scale"] for i in infos)
    change = max(i["change"] for i in infos)
    sq_norm = sum(i["sq_norm"] for i in infos)
    if loss == "squares":
        objective = infos[-1]["loss"] + penalty * sq_norm
    else:
        objective = infos[-1]["loss"] + 0.5 * sq_norm * (0.0 if np.isinf(penalty) else 1.0)
    return {
        "round": infos[0]["round"],
        "max_change": change / scale if scale > 0 else (0.0 if change == 0 else np.inf),
        "objective": objective,
        "seconds": sum(i["seconds"] for i in infos),
    }


def split_rounds(log, n_blocks):
    return [log[i : i + n_blocks] for i in range(0, len(log), n_blocks)]


def finalize_backfit(spec, meta, log, coefs):
    """The fused linear model, the block reports and the rounds' history.

    Parameters
    ----------
    log : list of dict
        The steps' log, as the last step passed it on.
    coefs : list of ndarray
        Every block's coefficients after the last round (k x p_b).
    """
    rounds = split_rounds(log, len(spec.groups))
    history = [round_summary(r, spec.estimator) for r in rounds]
    converged = bool(history[-1]["max_change"] < spec.fusion.tol)
    estimator = linear_model(spec, meta, coefs, log[-1]["intercept"], len(rounds))
    reports = []
    for b, cols in enumerate(spec.groups):
        steps = [r[b] for r in rounds]
        seconds = float(sum(s["seconds"] for s in steps))
        reports.append(
            {
                "partition": b,
                "columns": cols.tolist(),
                "rows": steps[-1]["rows"],
                "train_score": None,
                "n_iter": int(sum(s["n_iter"] for s in steps)),
                "fit_seconds": seconds,
                "task_seconds": seconds,
                "worker": steps[-1]["worker"],
                "rounds": len(rounds),
                "converged": converged,
            }
        )
    return estimator, reports, history


def linear_model(spec, meta, coefs, intercept, n_iter):
    """The fused plain linear model from every block's coefficients (k x p_b) and the intercept."""
    estimator = clone(spec.estimator)
    k = coefs[0].shape[0]
    coef = np.zeros((k, meta["n_features_in_"]))
    for block_coef, cols in zip(coefs, spec.groups):
        coef[:, cols] = block_coef
    intercept = np.asarray(intercept, dtype=float)
    loss, _, fit_intercept = _problem(spec.estimator)
    if loss == "logistic":
        if k > 1:
            # softmax is unchanged by a shift of all intercepts: centre them as
            # scikit-learn's solution is (its intercept gradient sums to zero)
            intercept = intercept - intercept.mean()
        estimator.classes_ = np.asarray(spec.classes)
        estimator.coef_ = coef
        estimator.intercept_ = intercept if fit_intercept else np.zeros(k)
        estimator.n_iter_ = np.asarray([n_iter], dtype=np.int32)
    elif meta.get("y_ndim", 1) == 1:
        estimator.coef_ = coef[0]
        estimator.intercept_ = float(intercept[0]) if fit_intercept else 0.0
    else:
        estimator.coef_ = coef
        estimator.intercept_ = intercept if fit_intercept else np.zeros(k)
    return stamp_inputs(estimator, meta)
