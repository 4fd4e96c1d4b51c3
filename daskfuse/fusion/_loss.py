"""The one place that touches scikit-learn's private loss machinery.

:class:`sklearn.linear_model._linear_loss.LinearModelLoss` over the base losses of
``sklearn._loss`` is exactly the objective that scikit-learn's ``lbfgs`` and
``newton-cholesky`` solvers minimise. It is private API: ``tests/test_newton.py``
fails loudly if its behaviour changes.
"""

from __future__ import annotations

from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model._linear_loss import LinearModelLoss

__all__ = ["linear_loss", "multinomial"]


def multinomial(estimator, n_classes):
    """Whether ``estimator`` fits a softmax model (a LogisticRegression, 3+ classes)."""
    return isinstance(estimator, LogisticRegression) and bool(n_classes) and n_classes > 2


def linear_loss(estimator, classes):
    """Scikit-learn's :class:`LinearModelLoss` for ``estimator`` (``classes``: or None)."""
    if isinstance(estimator, LogisticRegression):
        n = len(classes)
        base = HalfBinomialLoss() if n == 2 else HalfMultinomialLoss(n_classes=n)
    else:
        base = estimator._get_loss()
    return LinearModelLoss(base, fit_intercept=estimator.fit_intercept)
