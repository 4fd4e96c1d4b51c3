"""Plain fused models: ensembles of already fitted scikit-learn estimators.

The ensemble fusers (:class:`daskfuse.fusion.Vote`, :class:`daskfuse.fusion.Stack`)
return these. They hold the partitions' fitted models as they are (members are never
refitted), import nothing from dask, pickle, and behave as scikit-learn estimators:
``predict``, ``predict_proba``, ``score``, ``classes_`` in the original labels (strings
too).

Members may disagree on the class list (a partition that lacked a class gives a model
that never predicts it): every member's output is laid onto the global ``classes_`` by
label, a class it does not know contributing zero.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import pandas as pd
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    RegressorMixin,
    clone,
)
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "ColumnStackingClassifier",
    "ColumnStackingRegressor",
    "FusedStackingClassifier",
    "FusedStackingRegressor",
    "FusedVotingClassifier",
    "FusedVotingRegressor",
]

_STACK_METHODS = ("auto", "predict_proba", "decision_function", "predict")


# --------------------------------------------------------------------- helpers
def member_input(member, X):
    """``X`` as ``member`` was fitted on it: a DataFrame where it knows column names.

    Members fitted by daskfuse saw numpy arrays; members fitted elsewhere (and fused
    with :func:`daskfuse.fuse`) may have seen DataFrames and would warn on arrays.
    """
    names = getattr(member, "feature_names_in_", None)
    if names is not None and not isinstance(X, pd.DataFrame):
        return pd.DataFrame(X, columns=names)
    return X


def union_classes(class_lists):
    """The sorted union of several class lists."""
    return reduce(np.union1d, [np.asarray(c) for c in class_lists])


def align_columns(values, member_classes, classes):
    """Lay the columns of ``values`` (one per ``member_classes``) onto ``classes``.

    A class of ``classes`` that the member does not know gets a column of zeros.
    """
    values = np.asarray(values, dtype=float)
    if len(member_classes) == len(classes) and np.array_equal(member_classes, classes):
        return values
    out = np.zeros((values.shape[0], len(classes)))
    out[:, np.searchsorted(classes, member_classes)] = values
    return out


def _check_subset(member_classes, classes, i):
    known = np.isin(member_classes, classes)
    if not known.all():
        raise ValueError(
            f"estimators[{i}] knows class(es) {np.asarray(member_classes)[~known].tolist()} "
            f"that are not in classes={np.asarray(classes).tolist()}"
        )


def _check_members(estimators, weights, owner):
    if not isinstance(estimators, list | tuple) or len(estimators) == 0:
        raise ValueError(
            f"{owner}(estimators=...) must be a non-empty list of fitted estimators; "
            f"got {type(estimators).__name__}"
        )
    for i, est in enumerate(estimators):
        if not hasattr(est, "predict"):
            raise TypeError(
                f"{owner}(estimators=...): estimators[{i}] ({type(est).__name__}) has no "
                "predict method"
            )
        check_is_fitted(est, msg=f"{owner}: estimators[{i}] %(name)s is not fitted")
    if weights is None:
        return np.ones(len(estimators))
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(estimators),):
        raise ValueError(
            f"{owner}(weights=...) needs one weight per estimator ({len(estimators)}); "
            f"got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(
            f"{owner}(weights=...) must be finite, >= 0 and not all zero; got {w.tolist()}"
        )
    return w


def _n_features(estimators):
    n = {getattr(e, "n_features_in_", None) for e in estimators} - {None}
    if len(n) > 1:
        raise ValueError(f"the estimators were fitted on different numbers of features: {n}")
    return n.pop() if n else None


class _PrefitEnsemble(MetaEstimatorMixin, BaseEstimator):
    """Common parts: member checks, input validation, fitted feature counts."""

    def _set_inputs(self):
        n = _n_features(self.estimators_)
        if n is not None:
            self.n_features_in_ = n
        names = getattr(self.estimators_[0], "feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = names

    def _inputs(self, X):
        """Check ``X`` against what was seen in fit; members get it as they were fitted."""
        # dtype=None and allow-nan: the members do their own conversion and NaN policy
        return validate_data(
            self, X, reset=False, dtype=None, ensure_all_finite=False, accept_sparse=True
        )

    def _member_outputs(self, method, X):
        check_is_fitted(self)
        Xv = self._inputs(X)
        return [getattr(m, method)(member_input(m, Xv)) for m in self.estimators_]


# ---------------------------------------------------------------------- voting
def _soft(self):
    return self.voting == "soft"


class FusedVotingClassifier(ClassifierMixin, _PrefitEnsemble):
    """Weighted vote of already fitted classifiers.

    Parameters
    ----------
    estimators : list of fitted classifiers
        The members; used as they are, never refitted.
    weights : array-like of shape (n_estimators,) or None, default=None
        Weight of each member's vote (non-negative, not all zero); None weighs them
        equally.
    voting : {"hard", "soft"}, default="hard"
        ``"hard"``: the class with the largest weighted count of member predictions
        (ties go to the first class in ``classes_``); ``"soft"``: the largest weighted
        mean of the members' ``predict_proba``, each laid onto ``classes_`` by label.
    classes : array-like or None, default=None
        The class labels of the ensemble; None is the union of the members'
        ``classes_``. A class a member does not know gets no vote (and probability 0)
        from it.

    Attributes
    ----------
    estimators_ : list of estimators
        The members (the same objects as ``estimators``).
    weights_ : ndarray of shape (n_estimators,)
        The members' weights.
    classes_ : ndarray
        The class labels, sorted.
    n_features_in_ : int
        Number of features the members were fitted on.
    feature_names_in_ : ndarray of str
        Column names seen in fit, where known.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from daskfuse.models import FusedVotingClassifier
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> a = DecisionTreeClassifier().fit(X[:4], ["x", "x", "y", "y"])
    >>> b = DecisionTreeClassifier().fit(X[2:], ["y", "y", "z", "z"])
    >>> vote = FusedVotingClassifier([a, b], voting="soft").fit()
    >>> vote.classes_.tolist()
    ['x', 'y', 'z']
    >>> vote.predict_proba(X[:1]).round(2).tolist()
    [[0.5, 0.5, 0.0]]
    """

    def __init__(self, estimators, *, weights=None, voting="hard", classes=None):
        self.estimators = estimators
        self.weights = weights
        self.voting = voting
        self.classes = classes

    def fit(self, X=None, y=None):
        """Check the fitted members and set the ensemble's attributes.

        Parameters
        ----------
        X, y : ignored
            The members are already fitted; accepted for API compatibility.

        Returns
        -------
        self : object
        """
        if self.voting not in ("hard", "soft"):
            raise ValueError(f"voting must be 'hard' or 'soft'; got {self.voting!r}")
        self.weights_ = _check_members(self.estimators, self.weights, type(self).__name__)
        self.estimators_ = list(self.estimators)
        for i, est in enumerate(self.estimators_):
            if not hasattr(est, "classes_"):
                raise TypeError(
                    f"{type(self).__name__}: estimators[{i}] ({type(est).__name__}) is not "
                    "a classifier (it has no classes_)"
                )
            if self.voting == "soft" and not hasattr(est, "predict_proba"):
                raise TypeError(
                    f"{type(self).__name__}(voting='soft'): estimators[{i}] "
                    f"({type(est).__name__}) has no predict_proba; use voting='hard'"
                )
        if self.classes is None:
            self.classes_ = union_classes([e.classes_ for e in self.estimators_])
        else:
            self.classes_ = np.unique(np.asarray(self.classes))
            for i, est in enumerate(self.estimators_):
                _check_subset(est.classes_, self.classes_, i)
        self._set_inputs()
        return self

    @available_if(_soft)
    def predict_proba(self, X):
        """Weighted mean of the members' class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        probas = self._member_outputs("predict_proba", X)
        total = sum(
            w * align_columns(p, m.classes_, self.classes_)
            for w, p, m in zip(self.weights_, probas, self.estimators_)
        )
        return total / self.weights_.sum()

    def predict(self, X):
        """Class labels by (hard or soft) weighted vote.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        if self.voting == "soft":
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        predictions = self._member_outputs("predict", X)
        votes = np.zeros((len(predictions[0]), len(self.classes_)))
        rows = np.arange(len(predictions[0]))
        for w, pred in zip(self.weights_, predictions):
            votes[rows, np.searchsorted(self.classes_, np.asarray(pred))] += w
        return self.classes_[np.argmax(votes, axis=1)]


class FusedVotingRegressor(RegressorMixin, _PrefitEnsemble):
    """Weighted mean of the predictions of already fitted regressors.

    Parameters
    ----------
    estimators : list of fitted regressors
        The members; used as they are, never refitted.
    weights : array-like of shape (n_estimators,) or None, default=None
        Weight of each member (non-negative, not all zero); None weighs them equally.

    Attributes
    ----------
    estimators_ : list of estimators
        The members (the same objects as ``estimators``).
    weights_ : ndarray of shape (n_estimators,)
        The members' weights.
    n_features_in_ : int
        Number of features the members were fitted on.
    feature_names_in_ : ndarray of str
        Column names seen in fit, where known.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from daskfuse.models import FusedVotingRegressor
    >>> X = np.arange(4.0).reshape(-1, 1)
    >>> a = LinearRegression().fit(X, [0.0, 1.0, 2.0, 3.0])
    >>> b = LinearRegression().fit(X, [1.0, 2.0, 3.0, 4.0])
    >>> FusedVotingRegressor([a, b], weights=[3, 1]).fit().predict([[0.0]]).round(6).tolist()
    [0.25]
    """

    def __init__(self, estimators, *, weights=None):
        self.estimators = estimators
        self.weights = weights

    def fit(self, X=None, y=None):
        """Check the fitted members and set the ensemble's attributes.

        Parameters
        ----------
        X, y : ignored
            The members are already fitted; accepted for API compatibility.

        Returns
        -------
        self : object
        """
        self.weights_ = _check_members(self.estimators, self.weights, type(self).__name__)
        self.estimators_ = list(self.estimators)
        self._set_inputs()
        return self

    def predict(self, X):
        """Weighted mean of the members' predictions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        predictions = [np.asarray(p, dtype=float) for p in self._member_outputs("predict", X)]
        return np.average(np.stack(predictions), axis=0, weights=self.weights_)


# -------------------------------------------------------------------- stacking
#: what ``stack_method`` may be, for :class:`~daskfuse.fusion.Stack` and the column stacking
STACK_METHODS = ("auto", "predict_proba", "decision_function", "predict")


def check_stack_params(owner, final_estimator, stack_method):
    """Raise if a stacking strategy's meta-learner or ``stack_method`` is not one.

    ``owner`` names the strategy in the message (``"Stack"``, ``"ColumnStack"``).
    """
    if final_estimator is not None and not hasattr(final_estimator, "fit"):
        raise TypeError(
            f"{owner}(final_estimator=...) must be None or an estimator; got "
            f"{type(final_estimator).__name__}"
        )
    if stack_method not in STACK_METHODS:
        raise ValueError(
            f"{owner}(stack_method=...) must be one of "
            f"{', '.join(map(repr, STACK_METHODS))}; got {stack_method!r}"
        )


def resolve_stack_method(estimator, stack_method, classifier):
    """The method whose output feeds the meta-learner for ``estimator``."""
    if not classifier:
        return "predict"
    if stack_method == "auto":
        for method in ("predict_proba", "decision_function", "predict"):
            if hasattr(estimator, method):
                return method
    if not hasattr(estimator, stack_method):
        raise TypeError(
            f"stack_method={stack_method!r} but {type(estimator).__name__} has no "
            f"{stack_method}; use stack_method='auto'"
        )
    return stack_method


def member_output(member, method, X):
    """The raw output of ``member.<method>`` on ``X`` (validated ``X`` as fitted)."""
    return np.asarray(getattr(member, method)(member_input(member, X)))


def stack_features(raw, method, member_classes, classes):
    """Meta-features from one member's raw output, laid out on the global ``classes``.

    Every member gives the same number of columns whatever classes it knows: one for
    two global classes (the second class's column, as scikit-learn's stacking drops
    the redundant first), else one per class. Regressors give their predictions.
    """
    if classes is None:
        return raw.reshape(len(raw), -1).astype(float)
    n_classes = len(classes)
    if method == "predict":
        onehot = (np.asarray(raw)[:, None] == np.asarray(classes)[None, :]).astype(float)
        full = onehot
    elif method == "decision_function" and raw.ndim == 1:
        # a binary member's score is "its second class against its first"
        full = np.zeros((len(raw), n_classes))
        first, second = np.searchsorted(classes, member_classes[:2])
        full[:, second] = raw
        if n_classes > 2:
            full[:, first] = -raw
    else:
        full = align_columns(raw, member_classes, classes)
    return full[:, 1:2] if n_classes == 2 else full


class _StackingBase(_PrefitEnsemble):
    _classifier = False

    def _check(self):
        if self.stack_method not in _STACK_METHODS:
            raise ValueError(
                f"stack_method must be one of {', '.join(map(repr, _STACK_METHODS))}; "
                f"got {self.stack_method!r}"
            )
        _check_members(self.estimators, None, type(self).__name__)
        self.estimators_ = list(self.estimators)
        self.stack_method_ = [
            resolve_stack_method(e, self.stack_method, self._classifier)
            for e in self.estimators_
        ]

    def _default_final(self):
        raise NotImplementedError

    def fit(self, X, y):
        """Fit the final estimator on the members' outputs for ``X``.

        The members are used as they are (never refitted), so ``X`` and ``y`` should
        be rows that the members were not fitted on.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows held out from the members' fits.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : object
        """
        self._check()
        self._set_inputs()
        if self._classifier:
            self._set_classes(np.asarray(y))
        features = self.transform(X)
        return self.fit_final(features, y)

    def fit_final(self, features, y):
        """Fit (a clone of) ``final_estimator`` on precomputed meta-features.

        Used by :class:`daskfuse.fusion.Stack`, which computes the features of each
        partition's held-out rows with a model that did not see them.

        Parameters
        ----------
        features : ndarray of shape (n_samples, n_meta_features)
            Meta-features, as :meth:`transform` lays them out.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : object
        """
        if not hasattr(self, "estimators_"):
            self._check()
            self._set_inputs()
            if self._classifier:
                self._set_classes(np.asarray(y))
        final = self.final_estimator
        final = self._default_final() if final is None else clone(final)
        self.final_estimator_ = final.fit(features, y)
        return self

    def transform(self, X):
        """The meta-features: every member's output on its input, side by side.

        A member's input is ``X`` (for column stacking, its own block of columns).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        features : ndarray of shape (n_samples, n_meta_features)
        """
        check_is_fitted(self, "estimators_")
        Xv = self._inputs(X)
        classes = getattr(self, "classes_", None)
        return np.hstack(
            [
                stack_features(
                    member_output(m, method, part),
                    method,
                    getattr(m, "classes_", None),
                    classes,
                )
                for m, method, part in zip(
                    self.estimators_, self.stack_method_, self._member_inputs(Xv)
                )
            ]
        )

    def _member_inputs(self, Xv):
        """What each member is given of the validated ``Xv``: all of it."""
        return [Xv] * len(self.estimators_)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "final_estimator_")


def _final_has(method):
    def check(self):
        final = getattr(self, "final_estimator_", self.final_estimator)
        return final is None or hasattr(final, method)

    return check


class FusedStackingClassifier(ClassifierMixin, _StackingBase):
    """Stacking of already fitted classifiers with a fitted meta-learner.

    Parameters
    ----------
    estimators : list of fitted classifiers
        The members; used as they are, never refitted.
    final_estimator : classifier or None, default=None
        The meta-learner, fitted on the members' outputs; None is
        ``LogisticRegression()``.
    stack_method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        Which member output feeds the meta-learner; ``"auto"`` takes the first of
        these that each member has. Probabilities and scores are laid onto
        ``classes_`` by label (one column for two classes, else one per class);
        ``"predict"`` gives one-hot labels.
    classes : array-like or None, default=None
        The class labels of the ensemble; None is the union of the members' classes
        and the labels of ``y`` in fit.

    Attributes
    ----------
    estimators_ : list of estimators
        The members.
    final_estimator_ : estimator
        The fitted meta-learner.
    stack_method_ : list of str
        The method used for each member.
    classes_ : ndarray
        The class labels, sorted.
    n_features_in_ : int
        Number of features the members were fitted on.
    feature_names_in_ : ndarray of str
        Column names seen in fit, where known.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from daskfuse.models import FusedStackingClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = np.where(X[:, 0] > 0, "pos", "neg")
    >>> a = DecisionTreeClassifier(max_depth=2).fit(X[:100], y[:100])
    >>> stack = FusedStackingClassifier([a]).fit(X[100:], y[100:])
    >>> stack.score(X, y) > 0.9
    True
    """

    _classifier = True

    def __init__(self, estimators, final_estimator=None, *, stack_method="auto", classes=None):
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.stack_method = stack_method
        self.classes = classes

    def _set_classes(self, y):
        known = [e.classes_ for e in self.estimators_ if hasattr(e, "classes_")]
        if self.classes is not None:
            self.classes_ = np.unique(np.asarray(self.classes))
        else:
            self.classes_ = union_classes([*known, np.unique(y)])
        for i, member_classes in enumerate(known):
            _check_subset(member_classes, self.classes_, i)

    def _default_final(self):
        return LogisticRegression()

    def predict(self, X):
        """Class labels from the meta-learner.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.final_estimator_.predict(self.transform(X))

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the meta-learner, one column per ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        final = self.final_estimator_
        return align_columns(final.predict_proba(self.transform(X)), final.classes_, self.classes_)


class FusedStackingRegressor(RegressorMixin, _StackingBase):
    """Stacking of already fitted regressors with a fitted meta-learner.

    Parameters
    ----------
    estimators : list of fitted regressors
        The members; used as they are, never refitted.
    final_estimator : regressor or None, default=None
        The meta-learner, fitted on the members' predictions; None is ``RidgeCV()``.
    stack_method : {"auto", "predict"}, default="auto"
        Regressors always stack their predictions.

    Attributes
    ----------
    estimators_ : list of estimators
        The members.
    final_estimator_ : estimator
        The fitted meta-learner.
    stack_method_ : list of str
        ``"predict"`` for each member.
    n_features_in_ : int
        Number of features the members were fitted on.
    feature_names_in_ : ndarray of str
        Column names seen in fit, where known.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from daskfuse.models import FusedStackingRegressor
    >>> X = np.arange(10.0).reshape(-1, 1)
    >>> a = LinearRegression().fit(X[:5], 2 * X[:5, 0])
    >>> stack = FusedStackingRegressor([a], LinearRegression()).fit(X[5:], 2 * X[5:, 0] + 1)
    >>> stack.predict([[0.0]]).round(2).tolist()
    [1.0]
    """

    def __init__(self, estimators, final_estimator=None, *, stack_method="auto"):
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.stack_method = stack_method

    def _default_final(self):
        return RidgeCV()

    def predict(self, X):
        """Predictions of the meta-learner.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray
        """
        check_is_fitted(self)
        return self.final_estimator_.predict(self.transform(X))



# ------------------------------------------------------------- column stacking
def check_column_blocks(blocks, n_members, owner):
    """The column indices of each member as int arrays; they must tile ``0 .. p-1``."""
    if not isinstance(blocks, list | tuple) or len(blocks) != n_members:
        raise ValueError(
            f"{owner}(blocks=...) needs one list of column indices per estimator "
            f"({n_members}); got {blocks!r}"
        )
    out = []
    for i, block in enumerate(blocks):
        idx = np.asarray(block)
        if idx.ndim != 1 or len(idx) == 0 or idx.dtype.kind not in "iu":
            raise ValueError(
                f"{owner}(blocks=...): blocks[{i}] must be a non-empty list of column "
                f"indices (int); got {block!r}"
            )
        out.append(idx.astype(np.intp))
    every = np.concatenate(out)
    if not np.array_equal(np.sort(every), np.arange(len(every))):
        raise ValueError(
            f"{owner}(blocks=...) must hold every column 0 .. {len(every) - 1} exactly once; "
            f"got {[b.tolist() for b in out]}"
        )
    return out


class _ColumnStackingBase(_StackingBase):
    """Stacking over column blocks: member ``i`` sees only the columns ``blocks[i]``."""

    def _check(self):
        super()._check()
        self.blocks_ = check_column_blocks(
            self.blocks, len(self.estimators_), type(self).__name__
        )

    def _set_inputs(self):
        n = sum(len(b) for b in self.blocks_)
        if getattr(self, "n_features_in_", n) != n:
            raise ValueError(
                f"X has {self.n_features_in_} features, but the blocks of "
                f"{type(self).__name__} cover {n} columns"
            )
        self.n_features_in_ = n

    def fit(self, X, y):
        """Fit the final estimator on the block members' outputs for ``X``.

        The members are used as they are (never refitted), so ``X`` and ``y`` should
        be rows that the members were not fitted on.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            All the columns; member ``i`` gets ``X[:, blocks[i]]``.
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
        """
        for name in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(name, None)
        validate_data(self, X, dtype=None, ensure_all_finite=False)
        return super().fit(X, y)

    def _member_inputs(self, Xv):
        """Each member's own block of columns of ``Xv``."""
        return [Xv[:, cols] for cols in self.blocks_]


class ColumnStackingClassifier(ClassifierMixin, _ColumnStackingBase):
    """Stacking of classifiers fitted on column blocks, with a fitted meta-learner.

    The result of vertical stacking (:class:`daskfuse.vertical.ColumnStack`): member
    ``i`` was fitted on the columns ``blocks[i]`` of all rows; ``predict`` routes each
    block of a full ``X`` to its member and feeds their outputs to the meta-learner.

    Parameters
    ----------
    estimators : list of fitted classifiers
        The block members; used as they are, never refitted.
    blocks : list of list of int
        The column indices of each member; together every column exactly once.
    final_estimator : classifier or None, default=None
        The meta-learner; None is ``LogisticRegression()``.
    stack_method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        Which member output feeds the meta-learner; ``"auto"`` takes the first of
        these that each member has.
    classes : array-like or None, default=None
        The class labels; None is the union of the members' classes and the labels
        of ``y`` in fit.

    Attributes
    ----------
    estimators_ : list of estimators
        The members.
    blocks_ : list of ndarray of int
        The column indices of each member.
    final_estimator_ : estimator
        The fitted meta-learner.
    stack_method_ : list of str
        The method used for each member.
    classes_ : ndarray
        The class labels, sorted.
    n_features_in_ : int
        Number of columns of ``X`` (all blocks).
    feature_names_in_ : ndarray of str
        Column names seen in fit, where known.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from daskfuse.models import ColumnStackingClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> y = (X[:, 0] + X[:, 3] > 0).astype(int)
    >>> a = DecisionTreeClassifier(max_depth=3).fit(X[:200, :2], y[:200])
    >>> b = DecisionTreeClassifier(max_depth=3).fit(X[:200, 2:], y[:200])
    >>> stack = ColumnStackingClassifier([a, b], [[0, 1], [2, 3]]).fit(X[200:], y[200:])
    >>> stack.score(X[200:], y[200:]) > 0.8
    True
    """

    _classifier = True

    def __init__(
        self, estimators, blocks, final_estimator=None, *, stack_method="auto", classes=None
    ):
        self.estimators = estimators
        self.blocks = blocks
        self.final_estimator = final_estimator
        self.stack_method = stack_method
        self.classes = classes

    # the same labels, meta-learner and predictions as the row-wise stacking
    _set_classes = FusedStackingClassifier.__dict__["_set_classes"]
    _default_final = FusedStackingClassifier.__dict__["_default_final"]
    predict = FusedStackingClassifier.__dict__["predict"]
    predict_proba = FusedStackingClassifier.__dict__["predict_proba"]


class ColumnStackingRegressor(RegressorMixin, _ColumnStackingBase):
    """Stacking of regressors fitted on column blocks, with a fitted meta-learner.

    The result of vertical stacking (:class:`daskfuse.vertical.ColumnStack`) for
    regressors: member ``i`` was fitted on the columns ``blocks[i]``; ``predict``
    routes each block of a full ``X`` to its member.

    Parameters
    ----------
    estimators : list of fitted regressors
        The block members; used as they are, never refitted.
    blocks : list of list of int
        The column indices of each member; together every column exactly once.
    final_estimator : regressor or None, default=None
        The meta-learner, fitted on the members' predictions; None is ``RidgeCV()``.
    stack_method : {"auto", "predict"}, default="auto"
        Regressors always stack their predictions.

    Attributes
    ----------
    estimators_ : list of estimators
        The members.
    blocks_ : list of ndarray of int
        The column indices of each member.
    final_estimator_ : estimator
        The fitted meta-learner.
    stack_method_ : list of str
        ``"predict"`` for each member.
    n_features_in_ : int
        Number of columns of ``X`` (all blocks).
    feature_names_in_ : ndarray of str
        Column names seen in fit, where known.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from daskfuse.models import ColumnStackingRegressor
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> y = X[:, 0] + 2 * X[:, 1]
    >>> a = LinearRegression().fit(X[:5, :1], y[:5])
    >>> b = LinearRegression().fit(X[:5, 1:], y[:5])
    >>> stack = ColumnStackingRegressor([a, b], [[0], [1]], LinearRegression())
    >>> bool(np.allclose(stack.fit(X[5:], y[5:]).predict(X), y))
    True
    """

    def __init__(self, estimators, blocks, final_estimator=None, *, stack_method="auto"):
        self.estimators = estimators
        self.blocks = blocks
        self.final_estimator = final_estimator
        self.stack_method = stack_method

    _default_final = FusedStackingRegressor.__dict__["_default_final"]
    predict = FusedStackingRegressor.__dict__["predict"]
