"""Per-family access to the learned parameters of scikit-learn estimators.

Only public fitted attributes are read and written (``coef_``, ``intercept_``,
``classes_``, ``n_features_in_``, ``feature_names_in_``). Classifier coefficients are
held *per class*: a binary model's single row ``w`` becomes the two rows
``(-s*w, s*w)`` for its two classes, so partitions that saw different subsets of the
classes can be aligned row by row on the union of their classes.

The estimator-family knowledge that generic code needs lives here too:
:func:`stamp_inputs` (the fit-wide input facts on a fused model),
:func:`accepts_objects` (which estimators take string and categorical columns),
:func:`fitted_train_score` (k-means knows its score on its own rows),
:func:`predicts_at_fit_cost` (kernel machines' predictions cost as much as their fit),
:func:`max_iter_reached` (whether an iterative solver ran out of iterations),
:func:`updates_per_partition` (the SGD schedule's step count over rounds) and
:meth:`MLPAdapter.warn_unshared_init` (averaging networks needs one initialisation).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from sklearn import cluster, linear_model, neural_network, svm
from sklearn.base import clone, is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from ._quiet import quiet_warnings

__all__ = [
    "LinearAdapter",
    "MLPAdapter",
    "accepts_objects",
    "adapter_for",
    "fitted_train_score",
    "linear_estimator_names",
    "max_iter_reached",
    "parameter_change",
    "predicts_at_fit_cost",
    "stamp_inputs",
    "updates_per_partition",
]


def stamp_inputs(model, meta):
    """Set the fit-wide input facts of ``meta`` on the fused ``model`` and return it.

    The partition models saw NumPy arrays; the fused model gets the
    ``n_features_in_`` and ``feature_names_in_`` of the whole input (each where
    ``meta`` has it, not None).
    """
    if meta.get("n_features_in_") is not None:
        model.n_features_in_ = meta["n_features_in_"]
    if meta.get("feature_names_in_") is not None:
        model.feature_names_in_ = meta["feature_names_in_"]
    return model


def accepts_objects(estimator):
    """Whether ``estimator`` is fitted on the input's own columns, strings and
    categoricals among them, rather than on a float array.

    True for the encoders (``OneHotEncoder``, ``OrdinalEncoder``), ``SimpleImputer``
    with ``strategy="most_frequent"`` or ``"constant"``, a ``ColumnTransformer``
    (it selects its columns by name and routes them to its transformers, which
    refuse the columns they cannot take), a ``FeatureUnion`` with such a part, and
    a ``Pipeline`` whose first step is one. Such an estimator gets each partition as
    a pandas DataFrame (a DataFrame input) or an array of its own dtype; every other
    estimator gets float arrays and a non-numeric column is refused, by name.

    Examples
    --------
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> accepts_objects(OneHotEncoder()), accepts_objects(StandardScaler())
    (True, False)
    """
    kind = type(estimator)
    if kind in (OneHotEncoder, OrdinalEncoder, ColumnTransformer):
        return True
    if kind is SimpleImputer:
        return estimator.strategy in ("most_frequent", "constant")
    if kind is FeatureUnion:
        return any(accepts_objects(t) for _, t in estimator.transformer_list)
    if kind is Pipeline:
        steps = [s for _, s in estimator.steps if s not in (None, "passthrough")]
        return bool(steps) and accepts_objects(steps[0])
    return False


def fitted_train_score(estimator, X, y):
    """The score of ``estimator`` on the rows ``X`` it was fitted on, where the fit
    already knows it (k-means: minus its final inertia), else None."""
    if isinstance(estimator, cluster.KMeans | cluster.MiniBatchKMeans) and y is None:
        labels = getattr(estimator, "labels_", None)
        inertia = getattr(estimator, "inertia_", None)
        if labels is not None and inertia is not None and len(labels) == len(X):
            return -float(inertia)
    return None


#: libsvm's kernel machines: a prediction evaluates the kernel against every support
#: vector (an RBF ``SVC`` predicts a row in about what its fit spends on one)
_KERNEL_MACHINES = (svm.SVC, svm.NuSVC, svm.SVR, svm.NuSVR, svm.OneClassSVM)


def predicts_at_fit_cost(estimator):
    """Whether predicting a row costs ``estimator`` about what its fit spends on one.

    True for libsvm's kernel machines (also as a Pipeline's last step), whose
    training score is then taken on a sparser sample of the partition's rows.
    """
    if isinstance(estimator, Pipeline) and estimator.steps:
        estimator = estimator.steps[-1][1]
    return isinstance(estimator, _KERNEL_MACHINES)


def max_iter_reached(estimator):
    """Whether the fit of ``estimator`` stopped at ``max_iter`` before converging.

    True where its ``n_iter_`` (the largest, for one solve per class) reached its
    ``max_iter``: when scikit-learn's iterative solvers of the linear models, the
    SVMs and the MLPs raise a ``ConvergenceWarning``. None for other families (for
    k-means or gradient boosting, reaching ``max_iter`` is no failure), without an
    iteration limit (``SVC(max_iter=-1)``) or a stopping criterion (the SGD family
    with ``tol=None`` runs ``max_iter`` on purpose).
    """
    if not isinstance(estimator, _CONVERGING):
        return None
    params = estimator.get_params()
    max_iter, n_iter = params.get("max_iter"), getattr(estimator, "n_iter_", None)
    if not isinstance(max_iter, int | np.integer) or max_iter < 1 or n_iter is None:
        return None
    if "tol" in params and params["tol"] is None:
        return None
    return bool(np.max(n_iter) >= max_iter)


def updates_per_partition(reports, epochs):
    """Mean number of updates (iterations x rows) one pass made per partition.

    Summed over passes, it is the ``steps`` that :meth:`LinearAdapter.local_fit`
    continues the SGD learning-rate schedule from. Where a report hides the
    iteration count (a private strategy), a pass counts ``epochs`` iterations.
    """
    return float(np.mean([(row["n_iter"] or epochs) * row["rows"] for row in reports]))


#: the families whose iterative solvers warn when they stop at ``max_iter``
_CONVERGING = tuple(
    getattr(module, name)
    for module, names in (
        (
            linear_model,
            (
                "LogisticRegression",
                "SGDClassifier",
                "SGDRegressor",
                "Perceptron",
                "PassiveAggressiveClassifier",
                "PassiveAggressiveRegressor",
                "Lasso",
                "ElasticNet",
            ),
        ),
        (svm, ("LinearSVC", "LinearSVR", "SVC", "SVR")),
        (neural_network, ("MLPClassifier", "MLPRegressor")),
    )
    for name in names
    if hasattr(module, name)
)


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


#: linear models trained by stochastic passes that accept a starting point (``coef_init``)
_SGD_FAMILY = (
    linear_model.SGDClassifier,
    linear_model.SGDRegressor,
    linear_model.Perceptron,
    linear_model.PassiveAggressiveClassifier,
    linear_model.PassiveAggressiveRegressor,
)


def _quiet_fit(estimator, X, y, **kwargs):
    # a local round stops after a few passes on purpose: no convergence warnings
    with quiet_warnings(ConvergenceWarning):
        return estimator.fit(X, y, **kwargs)


def _continued_rate(template, steps):
    """Learning-rate parameters that go on from ``steps`` earlier SGD updates.

    ``fit`` restarts the schedule at ``t = 1``; for the decaying schedules the rate
    reached after ``steps`` updates is nearly constant over one more local pass, so
    that pass runs at that constant rate.
    """
    params = template.get_params()
    schedule = params.get("learning_rate")
    if not steps or schedule not in ("optimal", "invscaling"):
        return {}
    if schedule == "optimal":
        eta = 1.0 / (params["alpha"] * steps)
    else:
        eta = params["eta0"] / steps ** params["power_t"]
    return {"learning_rate": "constant", "eta0": float(eta)}


def _pull(value, anchor, proximal):
    """The proximal map of ``proximal / 2 * |w - anchor|^2`` (unit step) at ``value``."""
    return (np.asarray(value, dtype=float) + proximal * anchor) / (1.0 + proximal)


def parameter_change(previous, current):
    """Relative L2 change ``|current - previous| / |previous|`` of two parameter dicts."""
    num = sum(float(np.sum((current[k] - previous[k]) ** 2)) for k in previous)
    den = sum(float(np.sum(previous[k] ** 2)) for k in previous)
    return float(np.sqrt(num / max(den, 1e-300)))


def _is_multinomial(estimator):
    # scikit-learn's LogisticRegression fits a softmax model for more than two
    # classes (liblinear excepted); its binary model is the softmax model with rows
    # (-w/2, w/2). The other linear classifiers are one-vs-rest: rows (-w, w).
    return (
        isinstance(estimator, linear_model.LogisticRegression) and estimator.solver != "liblinear"
    )


class LinearAdapter:
    """Reads and writes ``coef_``/``intercept_`` of the supported linear models."""

    #: coefficient rows belong to classes and are aligned by label across partitions
    aligns_classes = True
    #: whether ``build`` needs one partition's fitted model to copy private state from
    needs_carrier = False
    #: whether every partition must start from one shared seed (initial parameters)
    shared_seed = False

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
        return stamp_inputs(estimator, meta)

    @staticmethod
    def rounds_reason(estimator):
        """Why ``estimator`` cannot train further rounds from a fused model, or None."""
        if isinstance(estimator, _SGD_FAMILY):
            return None
        if isinstance(estimator, linear_model.LogisticRegression):
            if estimator.solver == "liblinear":
                return "LogisticRegression(solver='liblinear') cannot warm start"
            return None
        return (
            f"{type(estimator).__name__} is solved in one go (no warm start); rounds "
            "apply to SGDClassifier, SGDRegressor, Perceptron, PassiveAggressive*, "
            "LogisticRegression and MLP*"
        )

    @staticmethod
    def warn_unshared_init(models):
        """Linear models start from zero (or fit to their optimum): nothing to warn."""

    @staticmethod
    def proximal_reason(estimator):
        """Why a proximal term cannot be used with ``estimator``, or None."""
        if isinstance(estimator, _SGD_FAMILY):
            return None
        return (
            f"{type(estimator).__name__}'s solver runs to its own optimum and cannot "
            "take a proximal step between passes; proximal applies to the SGD family "
            "and MLP*"
        )

    @classmethod
    def start(cls, init, present):
        """``coef_init``/``intercept_init`` of a partition holding classes ``present``.

        ``init`` is the fused model; its per-class rows are cut down to the classes the
        partition holds (and a pair of rows to one binary row, as ``build`` does).
        """
        classes, params = cls.extract(init)
        # copies: SGD trains its coef_init array in place, and ``init`` is shared
        coef, intercept = params["coef_"].copy(), params["intercept_"].copy()
        if classes is None:
            return coef, intercept
        rows = np.searchsorted(classes, present)
        coef, intercept = coef[rows], intercept[rows]
        if len(present) == 2:
            s = cls.row_scale(init)
            coef = ((coef[1] - coef[0]) / (2 * s))[np.newaxis, :]
            intercept = np.array([(intercept[1] - intercept[0]) / (2 * s)])
        return coef, intercept

    @classmethod
    def local_fit(cls, template, init, X, y, epochs, proximal=0.0, steps=None):
        """Train ``template`` on one partition starting from the fused model ``init``.

        The SGD family runs ``epochs`` passes from ``coef_init``; with ``proximal`` >
        0 every pass is followed by the proximal map of ``proximal/2 |w - w_init|^2``
        (FedProx's term, by operator splitting). ``steps`` (the updates a partition
        made in earlier rounds) continues a decaying learning-rate schedule, which a
        fresh ``fit`` would restart at its largest step. LogisticRegression warm
        starts its solver and runs at most ``epochs`` iterations.
        """
        estimator = clone(template)
        present = np.unique(y) if is_classifier(template) else None
        coef0, intercept0 = cls.start(init, present)
        if isinstance(template, linear_model.LogisticRegression):
            estimator.set_params(warm_start=True, max_iter=epochs)
            estimator.coef_ = coef0.copy()
            estimator.intercept_ = intercept0.copy()
            return _quiet_fit(estimator, X, y)
        passes, per_pass = (epochs, 1) if proximal else (1, epochs)
        estimator.set_params(max_iter=per_pass, **_continued_rate(template, steps))
        if "tol" in estimator.get_params():
            estimator.set_params(tol=None)
        coef, intercept = coef0.copy(), intercept0.copy()
        for _ in range(passes):
            _quiet_fit(estimator, X, y, coef_init=coef, intercept_init=intercept)
            coef, intercept = estimator.coef_.copy(), estimator.intercept_.copy()
            if proximal:
                coef = _pull(coef, coef0.reshape(np.shape(coef)), proximal)
                intercept = _pull(intercept, intercept0.reshape(np.shape(intercept)), proximal)
                estimator.coef_, estimator.intercept_ = coef, intercept
        return estimator


class MLPAdapter:
    """Reads and writes the layer weights of ``MLPClassifier``/``MLPRegressor``.

    Averaging is meaningful only between networks grown from the same initial
    weights on the same output layer: every partition must see every class, and the
    fit tasks get one shared seed (``shared_seed``).
    """

    aligns_classes = False
    needs_carrier = True
    shared_seed = True

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

    @staticmethod
    def rounds_reason(estimator):
        return None

    @staticmethod
    def proximal_reason(estimator):
        return None

    @staticmethod
    def warn_unshared_init(models):
        """Warn where fitted networks (:func:`daskfuse.fuse`) were not grown from one seed."""
        seeds = {m.random_state for m in models}
        if len(seeds) != 1 or None in seeds or not isinstance(next(iter(seeds)), int):
            warnings.warn(
                "averaging MLPs is meaningful only when they were grown from one shared "
                "initialisation (the same integer random_state and architecture); these "
                f"models have random_state {[m.random_state for m in models]}. Use "
                "fusion='vote', or fit them with daskfuse.FusedClassifier/FusedRegressor, "
                "which share the initialisation",
                UserWarning,
                # the caller of daskfuse.fuse
                stacklevel=3,
            )

    @classmethod
    def local_fit(cls, template, init, X, y, epochs, proximal=0.0, steps=None):
        """Train on one partition from the fused network ``init`` (warm start).

        ``epochs`` passes (solver iterations); with ``proximal`` > 0 each pass is
        followed by the proximal map toward ``init``'s weights.
        """
        estimator = copy.deepcopy(init)
        passes, per_pass = (epochs, 1) if proximal else (1, epochs)
        estimator.set_params(warm_start=True, max_iter=per_pass)
        _, anchor = cls.extract(init)
        for _ in range(passes):
            _quiet_fit(estimator, X, y)
            if proximal:
                estimator.coefs_ = [
                    _pull(c, anchor[f"coefs_{i}"], proximal) for i, c in enumerate(estimator.coefs_)
                ]
                estimator.intercepts_ = [
                    _pull(b, anchor[f"intercepts_{i}"], proximal)
                    for i, b in enumerate(estimator.intercepts_)
                ]
        estimator.set_params(**template.get_params(deep=False))
        return estimator


ADAPTERS = (LinearAdapter, MLPAdapter)


def adapter_for(estimator):
    """The adapter that can average models like ``estimator``, or None."""
    for adapter in ADAPTERS:
        if adapter.supports(estimator):
            return adapter
    return None
