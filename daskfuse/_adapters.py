"""Per-family access to the learned parameters of scikit-learn estimators.

Only public fitted attributes are read and written (``coef_``, ``intercept_``,
``classes_``, ``n_features_in_``, ``feature_names_in_``). Classifier coefficients are
held *per class*: a binary model's single row ``w`` becomes the two rows
``(-s*w, s*w)`` for its two classes, so partitions that saw different subsets of the
classes can be aligned row by row on the union of their classes.
"""

from __future__ import annotations

import copy

import numpy as np
from sklearn import linear_model, neural_network, svm
from sklearn.base import clone, is_classifier

from ._quiet import quiet_warnings

__all__ = ["LinearAdapter", "MLPAdapter", "adapter_for", "linear_estimator_names"]


def _linear_classes():
    names = [
        "LogisticRegression",
        "SGDClassifier",
        "SGDRegressor",
        "Ridge",
        "RidgeClassifier",
        "LinearRegression",
        "Lasso",
        "ElasticNet",
        "Perceptron",
        "PassiveAggressiveClassifier",
        "PassiveAggressiveRegressor",
    ]
    found = [getattr(linear_model, n) for n in names if hasattr(linear_model, n)]
    return tuple(found) + (svm.LinearSVC, svm.LinearSVR)


LINEAR_ESTIMATORS = _linear_classes()


def linear_estimator_names():
    """Names of the estimators whose parameters can be averaged."""
    return [c.__name__ for c in LINEAR_ESTIMATORS]


def _is_multinomial(estimator):
    # scikit-learn's LogisticRegression fits a softmax model for more than two
    # classes (liblinear excepted); its binary model is the softmax model with rows
    # (-w/2, w/2). The other linear classifiers are one-vs-rest: rows (-w, w).
    return (
        isinstance(estimator, linear_model.LogisticRegression)
        and estimator.solver != "liblinear"
    )


class LinearAdapter:
    """Reads and writes ``coef_``/``intercept_`` of the supported linear models."""

    #: coefficient rows belong to classes and are aligned by label across partitions
    aligns_classes = True
    #: whether ``build`` needs one partition's fitted model to copy private state from
    needs_carrier = False

    @staticmethod
    def supports(estimator):
        return type(estimator) in LINEAR_ESTIMATORS

    @staticmethod
    def row_scale(estimator):
        return 0.5 if _is_multinomial(estimator) else 1.0

    @classmethod
    def extract(cls, estimator):
        """Parameters of a fitted estimator.

        Returns
        -------
        classes : ndarray or None
            The estimator's classes (classifiers) or None (regressors).
        params : dict of str to ndarray
            ``coef_`` and ``intercept_``; for classifiers with one row per class.
        """
        coef = np.asarray(estimator.coef_, dtype=float)
        intercept = np.asarray(estimator.intercept_, dtype=float)
        if not is_classifier(estimator):
            return None, {"coef_": coef, "intercept_": intercept}
        classes = np.asarray(estimator.classes_)
        coef = np.atleast_2d(coef)
        intercept = np.broadcast_to(intercept.reshape(-1), (coef.shape[0],)).copy()
        if len(classes) == 2 and coef.shape[0] == 1:
            s = cls.row_scale(estimator)
            coef = np.vstack([-s * coef[0], s * coef[0]])
            intercept = np.array([-s * intercept[0], s * intercept[0]])
        return classes, {"coef_": coef, "intercept_": intercept}

    @classmethod
    def build(cls, template, classes, params, meta, carrier=None):
        """A fitted clone of ``template`` carrying ``params``."""
        estimator = clone(template)
        coef, intercept = params["coef_"], params["intercept_"]
        if classes is not None:
            if len(classes) == 2:
                s = cls.row_scale(template)
                coef = ((coef[1] - coef[0]) / (2 * s))[np.newaxis, :]
                intercept = np.array([(intercept[1] - intercept[0]) / (2 * s)])
            if isinstance(template, linear_model.RidgeClassifier):
                # RidgeClassifier derives classes_ from a private label binarizer
                # that only fit() sets up: prime it on one row per class.
                with quiet_warnings():
                    estimator.fit(np.zeros((len(classes), coef.shape[1])), classes)
                # and, like scikit-learn's, keep a binary model's coef_ 1-D
                coef = coef.reshape(estimator.coef_.shape)
                intercept = intercept.reshape(np.shape(estimator.intercept_))
            else:
                estimator.classes_ = np.asarray(classes)
        elif np.ndim(intercept) == 0:
            intercept = float(intercept)
        estimator.coef_ = coef
        estimator.intercept_ = intercept
        estimator.n_features_in_ = meta["n_features_in_"]
        if meta.get("feature_names_in_") is not None:
            estimator.feature_names_in_ = meta["feature_names_in_"]
        return estimator


class MLPAdapter:
    """Reads and writes the layer weights of ``MLPClassifier``/``MLPRegressor``.

    Averaging is meaningful only between networks grown from the same initial
    weights on the same output layer: every partition must see every class, and the
    fit tasks get one shared seed (``shares_seed``).
    """

    aligns_classes = False
    needs_carrier = True

    @staticmethod
    def supports(estimator):
        return isinstance(estimator, neural_network.MLPClassifier | neural_network.MLPRegressor)

    @staticmethod
    def extract(estimator):
        params = {f"coefs_{i}": np.asarray(c, float) for i, c in enumerate(estimator.coefs_)}
        params.update(
            {f"intercepts_{i}": np.asarray(b, float) for i, b in enumerate(estimator.intercepts_)}
        )
        classes = np.asarray(estimator.classes_) if is_classifier(estimator) else None
        return classes, params

    @staticmethod
    def build(template, classes, params, meta, carrier=None):
        # The output decoding of a fitted MLP (its label binarizer, output
        # activation) is private state that only fit() sets up; every partition
        # saw the same classes, so one partition's model carries it.
        estimator = copy.deepcopy(carrier)
        n_layers = sum(1 for k in params if k.startswith("coefs_"))
        estimator.coefs_ = [params[f"coefs_{i}"] for i in range(n_layers)]
        estimator.intercepts_ = [params[f"intercepts_{i}"] for i in range(n_layers)]
        estimator.set_params(**template.get_params(deep=False))
        return estimator


ADAPTERS = (LinearAdapter, MLPAdapter)


def adapter_for(estimator):
    """The adapter that can average models like ``estimator``, or None."""
    for adapter in ADAPTERS:
        if adapter.supports(estimator):
            return adapter
    return None
