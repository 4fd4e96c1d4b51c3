"""The one place that touches scikit-learn's private loss machinery.

:class:`sklearn.linear_model._linear_loss.LinearModelLoss` over the base losses of
``sklearn._loss`` is exactly the objective that scikit-learn's ``lbfgs`` and
``newton-cholesky`` solvers minimise. It is private API: ``tests/test_newton.py``
fails loudly if its behaviour changes. :class:`SquaredSVMLoss` is the same interface
for liblinear's squared losses, which ``sklearn._loss`` does not have.
"""

from __future__ import annotations

import numpy as np
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn.base import is_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model._linear_loss import LinearModelLoss
from sklearn.svm import LinearSVC, LinearSVR

__all__ = ["SquaredSVMLoss", "coef_rows", "is_svm", "linear_loss", "margins", "multinomial"]


def multinomial(estimator, n_classes):
    """Whether ``estimator`` fits a softmax model (a LogisticRegression, 3+ classes)."""
    return isinstance(estimator, LogisticRegression) and bool(n_classes) and n_classes > 2


def is_svm(estimator):
    """Whether ``estimator`` is a liblinear SVM (its intercept is a penalised feature)."""
    return isinstance(estimator, LinearSVC | LinearSVR)


def coef_rows(estimator, n_classes):
    """``(k, order)``: the rows of ``coef_`` and how the flat parameters hold them
    (``"F"``: :class:`LinearModelLoss`'s multinomial layout; ``"C"``: row by row, the
    one-vs-rest problems of a LinearSVC with 3+ classes one after another)."""
    if multinomial(estimator, n_classes):
        return n_classes, "F"
    if isinstance(estimator, LinearSVC) and n_classes and n_classes > 2:
        return n_classes, "C"
    return 1, "C"


def linear_loss(estimator, classes):
    """Scikit-learn's :class:`LinearModelLoss` for ``estimator`` (``classes``: or None)."""
    if is_svm(estimator):
        return SquaredSVMLoss(estimator, None if classes is None else len(classes))
    if isinstance(estimator, LogisticRegression):
        n = len(classes)
        base = HalfBinomialLoss() if n == 2 else HalfMultinomialLoss(n_classes=n)
    else:
        base = estimator._get_loss()
    return LinearModelLoss(base, fit_intercept=estimator.fit_intercept)


def margins(loss, coefs, X):
    """The margins (raw predictions) of the rows ``X`` at each of the flat parameters
    ``coefs`` of ``loss``, from one product with ``X``: one read of the rows for all."""
    if len(coefs) == 1 or not isinstance(loss, LinearModelLoss):
        return [loss.weight_intercept_raw(coef, X)[2] for coef in coefs]
    parts = [loss.weight_intercept(coef) for coef in coefs]
    products = X @ np.vstack([np.atleast_2d(weights) for weights, _ in parts]).T
    out, at = [], 0
    for weights, intercept in parts:
        k = 1 if weights.ndim == 1 else len(weights)
        block = products[:, at : at + k]
        at += k
        out.append((block[:, 0] if weights.ndim == 1 else block) + intercept)
    return out


class SquaredSVMLoss:
    """liblinear's squared losses, per row, with :class:`LinearModelLoss`'s interface.

    The squared hinge ``max(0, 1 - s z)**2`` of a LinearSVC (``s`` = +-1; one
    problem per class, one-vs-rest, for 3+ classes) or the squared
    epsilon-insensitive ``max(0, |z - y| - epsilon)**2`` of a LinearSVR, with the
    linear predictor ``z = [X, intercept_scaling] w``: the intercept is a feature whose
    weight the penalty counts, as liblinear's. The Hessian is the generalised one
    (``2 x x^T`` over the rows where the loss is not flat).
    """

    def __init__(self, estimator, n_classes):
        self.classifier = is_classifier(estimator)
        self.k = coef_rows(estimator, n_classes)[0]
        self.scaling = float(estimator.intercept_scaling) if estimator.fit_intercept else None
        self.epsilon = 0.0 if self.classifier else float(estimator.epsilon)

    def _design(self, X):
        if self.scaling is None:
            return X
        return np.hstack([X, np.full((len(X), 1), self.scaling)])

    def weight_intercept_raw(self, coef, X):
        """``(None, None, raw)``: the linear predictor, (n,) or (n, k) for k problems."""
        W = np.reshape(coef, (self.k, -1))
        raw = self._design(X) @ W.T
        return None, None, raw[:, 0] if self.k == 1 else raw

    def _parts(self, y, raw):
        """``(slack, sign)``: each row's loss is ``slack**2``, its derivative in the
        linear predictor ``2 * sign * slack``."""
        if not self.classifier:
            residual = raw - y
            return np.maximum(np.abs(residual) - self.epsilon, 0.0), np.sign(residual)
        if self.k == 1:
            s = 2.0 * y - 1.0
        else:
            s = np.where(y[:, None] == np.arange(self.k), 1.0, -1.0)
        return np.maximum(1.0 - s * raw, 0.0), -s

    def _weights(self, y, sample_weight):
        """Each row's weight in each problem, (n, k), over the sum of the weights.

        ``sample_weight`` holds the rows' class weights; liblinear's one-vs-rest gives
        a row its class weight in its own class's problem only (1 in the others).
        """
        sw = np.asarray(sample_weight, dtype=float)
        weights = (
            sw[:, None]
            if self.k == 1
            else np.where(y[:, None] == np.arange(self.k), sw[:, None], 1.0)
        )
        return weights / np.sum(sw)

    def loss(self, coef, X, y, sample_weight, raw_prediction=None):
        """The weighted loss over the sum of ``sample_weight`` (no penalty)."""
        if raw_prediction is None:
            raw_prediction = self.weight_intercept_raw(coef, X)[2]
        slack, _ = self._parts(y, raw_prediction)
        return float(np.sum(self._weights(y, sample_weight) * slack.reshape(len(X), -1) ** 2))

    def loss_gradient(self, coef, X, y, sample_weight, raw_prediction=None):
        """``(loss, gradient)``: :meth:`loss` and its gradient in the flat parameters."""
        if raw_prediction is None:
            raw_prediction = self.weight_intercept_raw(coef, X)[2]
        slack, sign = self._parts(y, raw_prediction)
        weights = self._weights(y, sample_weight)
        slack, sign = slack.reshape(len(X), -1), sign.reshape(len(X), -1)
        grad = (2.0 * weights * sign * slack).T @ self._design(X)
        return float(np.sum(weights * slack**2)), grad.ravel()

    def gradient(self, coef, X, y, sample_weight, raw_prediction=None):
        """The gradient of :meth:`loss` in the flat parameters."""
        return self.loss_gradient(coef, X, y, sample_weight, raw_prediction)[1]

    def gradient_hessian(self, coef, X, y, sample_weight, raw_prediction=None):
        """``(gradient, hessian, None)`` of :meth:`loss` in the flat parameters."""
        if raw_prediction is None:
            raw_prediction = self.weight_intercept_raw(coef, X)[2]
        _, grad = self.loss_gradient(coef, X, y, sample_weight, raw_prediction)
        slack, _ = self._parts(y, raw_prediction)
        weights = self._weights(y, sample_weight)
        slack = slack.reshape(len(X), -1)
        Xd = self._design(X)
        m = Xd.shape[1]
        hess = np.zeros((self.k * m, self.k * m))
        for c in range(self.k):
            d = 2.0 * weights[:, c] * (slack[:, c] > 0)
            hess[c * m : (c + 1) * m, c * m : (c + 1) * m] = Xd.T @ (d[:, None] * Xd)
        return grad, hess, None
