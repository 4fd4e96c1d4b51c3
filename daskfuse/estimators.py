"""The scikit-learn meta-estimators: :class:`FusedClassifier` and :class:`FusedRegressor`."""

from __future__ import annotations

import copy
import numbers
import warnings

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from dask.base import tokenize
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClusterMixin,
    MetaEstimatorMixin,
    RegressorMixin,
    TransformerMixin,
    is_classifier,
    is_clusterer,
    is_regressor,
)
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import vertical
from ._graph import (
    FitSpec,
    build_fit_graph,
    compute_with_progress,
    estimator_allows_nan,
    fit_prefix,
)
from ._inputs import dask_blocks, dask_to_array, is_dask_input, seed_sequence
from .fusion import resolve_fusion
from .partition import STRATEGIES, Columns, Rows, plan_blocks, plan_in_memory

__all__ = ["FusedClassifier", "FusedClusterer", "FusedRegressor", "FusedTransformer"]


def _dask_classes(y_blocks):
    """The sorted class labels of a dask ``y``: one pass over its blocks."""
    uniques = dask.compute(*[delayed(np.unique, pure=True)(yb) for yb in y_blocks])
    return np.unique(np.concatenate([np.asarray(u) for u in uniques]))


def _estimator_has(attr):
    def check(self):
        if hasattr(self, "fused_estimator_"):
            return hasattr(self.fused_estimator_, attr)
        return hasattr(self.estimator, attr)

    return check


def _apply_block(block, estimator, method, feature_names):
    # Fused models hold float64 parameters (statistics are merged in float64); some
    # estimators (k-means) need the input in the dtype of their parameters.
    block = np.asarray(block, dtype=np.float64)
    if feature_names is not None:
        block = pd.DataFrame(block, columns=feature_names)
    return getattr(estimator, method)(block)


def _score_block(estimator, X, y, kind, feature_names):
    """Sufficient statistics of the score on one block (a ``daskfuse-score`` task)."""
    if kind == "clusterer":
        return float(_apply_block(X, estimator, "score", feature_names))
    pred = _apply_block(X, estimator, "predict", feature_names)
    y = np.asarray(y)
    if kind == "classifier":
        return float(np.sum(pred == y)), len(y)
    y = y.reshape(len(y), -1).astype(float)
    pred = np.asarray(pred, dtype=float).reshape(y.shape)
    mean = y.mean(axis=0)
    return {
        "n": len(y),
        "mean": mean,
        "m2": ((y - mean) ** 2).sum(axis=0),
        "ss_res": ((y - pred) ** 2).sum(axis=0),
    }


def _r2_from_parts(parts):
    n, mean, m2, ss_res = 0, 0.0, 0.0, 0.0
    for p in parts:
        # Chan et al.'s pairwise update of the total sum of squares
        delta = p["mean"] - mean
        total = n + p["n"]
        m2 = m2 + p["m2"] + delta**2 * n * p["n"] / total
        mean = mean + delta * p["n"] / total
        n = total
        ss_res = ss_res + p["ss_res"]
    r2 = np.where(m2 > 0, 1 - ss_res / np.where(m2 > 0, m2, 1), np.where(ss_res > 0, 0.0, 1.0))
    return float(np.mean(r2))


class _FusedBase(MetaEstimatorMixin, BaseEstimator):
    _kind = None

    def __init__(
        self,
        estimator,
        *,
        fusion="auto",
        partition=None,
        n_partitions=None,
        split_every=None,
        random_state=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.fusion = fusion
        self.partition = partition
        self.n_partitions = n_partitions
        self.split_every = split_every
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ params
    def _check_estimator(self):
        est = self.estimator
        if not (hasattr(est, "fit") and hasattr(est, "get_params")):
            raise TypeError(
                f"estimator must be a scikit-learn estimator with fit and get_params; "
                f"got {type(est).__name__} {est!r}"
            )
        if self._kind == "classifier" and not is_classifier(est):
            raise TypeError(
                f"{type(self).__name__} needs a classifier as estimator; got "
                f"{type(est).__name__}: use FusedRegressor for regressors"
            )
        if self._kind == "regressor" and not is_regressor(est):
            raise TypeError(
                f"{type(self).__name__} needs a regressor as estimator; got "
                f"{type(est).__name__}: use FusedClassifier for classifiers"
            )
        if self._kind == "transformer" and not hasattr(est, "transform"):
            raise TypeError(
                f"{type(self).__name__} needs a transformer (an estimator with "
                f"transform) as estimator; got {type(est).__name__}"
            )
        if self._kind == "clusterer" and not is_clusterer(est):
            raise TypeError(
                f"{type(self).__name__} needs a clusterer as estimator; got "
                f"{type(est).__name__}"
            )

    def _rows(self):
        n = self.n_partitions
        part = self.partition
        if part is None:
            return Rows(n)
        if isinstance(part, str):
            if part not in STRATEGIES:
                raise ValueError(
                    f"partition must be a daskfuse.partition.Rows or one of "
                    f"{', '.join(map(repr, STRATEGIES))}; got {part!r}"
                )
            return Rows(n, strategy=part)
        if isinstance(part, Rows):
            part.validate()
            if n is not None and part.n_partitions is not None and n != part.n_partitions:
                raise ValueError(
                    f"n_partitions={n!r} contradicts partition={part!r}; give the count once"
                )
            return Rows(part.n_partitions if n is None else n, strategy=part.strategy)
        raise TypeError(
            f"partition must be None, a strategy name, a daskfuse.partition.Rows or a "
            f"daskfuse.partition.Columns; got {type(part).__name__}"
        )

    def _split_every(self):
        s = self.split_every
        if s is None:
            s = dask.config.get("daskfuse.split-every", 8)
        if not isinstance(s, numbers.Integral) or isinstance(s, bool):
            raise TypeError(f"split_every must be an int >= 2 or None; got {s!r}")
        if s < 2:
            raise ValueError(f"split_every must be >= 2 (the fan-in of the fusion tree); got {s}")
        return int(s)

    # ------------------------------------------------------------------ fit
    def fit_graph(self, X, y=None):
        """The lazy fit: a ``dask.delayed`` object computing to ``(model, reports)``.

        Validates the parameters and the data as :meth:`fit` does and builds the
        task graph without running it; :meth:`fit` computes it. Useful to look at the
        graph (``.visualize()``, ``.dask``) or to compute it with other work.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            Training data, shape (n_samples, n_features).
        y : array-like, pandas Series, dask array or dask Series, or None
            Targets, aligned with the rows of ``X`` (None for transformers and
            clusterers).

        Returns
        -------
        graph : dask.delayed.Delayed
            Computes to the fused estimator and the list of partition reports.
        """
        if isinstance(self.partition, Columns):
            # vertical partitioning (column blocks) lives in daskfuse.vertical
            return vertical.fit_graph(self, X, y)
        return self._prepare(X, y)["graph"]

    def _prepare(self, X, y):
        self._check_estimator()
        fuser = resolve_fusion(self.fusion, self.estimator)
        rows = self._rows()
        split_every = self._split_every()
        if not isinstance(self.verbose, numbers.Integral):
            raise TypeError(f"verbose must be an int or bool; got {self.verbose!r}")
        seeds = seed_sequence(self.random_state)
        classifier = self._kind == "classifier"
        supervised = self._kind in ("classifier", "regressor")
        if not supervised:
            y = None
        elif y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        allow_nan = estimator_allows_nan(self.estimator)
        partition_seeds, fit_seeds = seeds.spawn(2)
        token_parts = self._token_parts(fuser, rows, split_every, seeds)
        classes = None

        if is_dask_input(X):
            blocks = dask_blocks(X, y)
            meta = {
                "n_features_in_": blocks.n_features,
                "feature_names_in_": blocks.feature_names,
            }
            if classifier and fuser.needs_classes_for(self.estimator):
                classes = _dask_classes(blocks.y_blocks)
            token = tokenize(token_parts, X, y)
            names = fit_prefix(token)
            plan = plan_blocks(
                blocks.x_blocks, blocks.y_blocks, blocks.lengths, rows, partition_seeds, names
            )
        else:
            if is_dask_input(y):
                raise TypeError(
                    "X is in memory but y is a dask collection; pass both in memory or "
                    "both as dask collections"
                )
            probe = copy.copy(self)
            if supervised:
                X, y = validate_data(
                    probe,
                    X,
                    y,
                    ensure_all_finite=not allow_nan,
                    multi_output=not classifier and self._multi_output(),
                    y_numeric=not classifier,
                )
            else:
                X = validate_data(probe, X, ensure_all_finite=not allow_nan)
            if classifier:
                check_classification_targets(y)
                classes = np.unique(y)
                if len(classes) < 2:
                    raise ValueError(
                        f"y holds 1 class ({classes[0]}); a classifier needs samples "
                        "of at least 2 classes"
                    )
            meta = {
                "n_features_in_": probe.n_features_in_,
                "feature_names_in_": getattr(probe, "feature_names_in_", None),
            }
            token = tokenize(token_parts, X, y)
            names = fit_prefix(token)
            plan = plan_in_memory(X, y, rows, partition_seeds, names["data"])

        n = len(plan.partitions)
        fuser.prepare(n)
        meta["classes"] = classes
        meta["n_partitions"] = n
        spec = FitSpec(
            estimator=self.estimator,
            fuser=fuser,
            classifier=classifier,
            seeds=self._partition_seeds(fuser, fit_seeds, n),
            holdout=fuser.holdout,
            allow_nan=allow_nan,
            classes=classes if fuser.needs_classes_for(self.estimator) else None,
        )
        graph = build_fit_graph(plan.partitions, spec, meta, split_every, token)
        return {
            "graph": graph,
            "fuser": fuser,
            "meta": meta,
            "plan": plan,
            "rows": rows,
            "split_every": split_every,
            "keys": names,
        }

    def _partition_seeds(self, fuser, fit_seeds, n):
        shared = fuser.shares_seed(self.estimator)
        if self.random_state is None:
            inner = self.estimator.get_params().get("random_state")
            if not shared:
                # every partition fits the estimator exactly as given
                return None
            if isinstance(inner, numbers.Integral) and not isinstance(inner, bool):
                return (int(inner),) * n
        if shared:
            # one seed for every partition: the same initial parameters everywhere
            return (int(fit_seeds.generate_state(1)[0]),) * n
        return tuple(int(s.generate_state(1)[0]) for s in fit_seeds.spawn(n))

    def _token_parts(self, fuser, rows, split_every, seeds):
        return (
            type(self).__name__,
            type(self.estimator).__module__,
            type(self.estimator).__qualname__,
            repr(sorted(self.estimator.get_params(deep=True).items(), key=str)),
            fuser,
            rows,
            split_every,
            # Fresh entropy (random_state=None) only matters where rows are shuffled;
            # elsewhere the keys stay deterministic.
            seeds.entropy
            if self.random_state is not None or rows.strategy in ("random", "stratified")
            else None,
        )

    def _multi_output(self):
        try:
            return bool(get_tags(self.estimator).target_tags.multi_output)
        except (AttributeError, TypeError, ValueError):
            return False

    def _clear_fitted(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)

    def fit(self, X, y=None):
        """Fit one model per partition as dask tasks and fuse them into one.

        A failed fit leaves the estimator unfitted, whatever it held before.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            Training data, shape (n_samples, n_features). Dask inputs stay on the
            workers: each partition is fitted where its rows are.
        y : array-like, pandas Series, dask array or dask Series, or None
            Targets, aligned with the rows of ``X`` (ignored by transformers and
            clusterers).

        Returns
        -------
        self : object
            The fitted meta-estimator.
        """
        if isinstance(self.partition, Columns):
            return vertical.fit(self, X, y)
        self._clear_fitted()
        try:
            prepared = self._prepare(X, y)
            fused, reports = compute_with_progress(prepared["graph"], self.verbose)
        except BaseException:
            self._clear_fitted()
            raise
        meta = prepared["meta"]
        self.fused_estimator_ = fused
        self.fusion_ = prepared["fuser"]
        self.partition_ = Rows(len(prepared["plan"].partitions), prepared["plan"].strategy)
        self.n_partitions_ = len(prepared["plan"].partitions)
        self.split_every_ = prepared["split_every"]
        self.partition_report_ = pd.DataFrame(reports).sort_values("partition").reset_index(
            drop=True
        )
        self.n_features_in_ = meta["n_features_in_"]
        if meta["feature_names_in_"] is not None:
            self.feature_names_in_ = meta["feature_names_in_"]
        if hasattr(fused, "classes_"):
            self.classes_ = fused.classes_
        return self

    # ------------------------------------------------------------------ predict
    def _delegate(self, method, X):
        check_is_fitted(self)
        estimator = self.fused_estimator_
        if is_dask_input(X):
            return self._delegate_dask(method, X)
        Xv = validate_data(
            self,
            X,
            reset=False,
            ensure_all_finite=not estimator_allows_nan(self.estimator),
        )
        return _apply_block(Xv, estimator, method, getattr(self, "feature_names_in_", None))

    def _delegate_dask(self, method, X):
        names = getattr(self, "feature_names_in_", None)
        if isinstance(X, dd.DataFrame) and names is not None:
            if list(X.columns) != list(names):
                raise ValueError(
                    f"X's columns {list(X.columns)} differ from the columns seen in fit "
                    f"{list(names)}"
                )
        Xa = dask_to_array(X)
        if not np.isnan(Xa.shape[1]) and Xa.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xa.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        estimator = self.fused_estimator_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = _apply_block(
                np.zeros((1, self.n_features_in_)), estimator, method, names
            )
        model = delayed(estimator, pure=True)
        if probe.ndim == 1:
            return Xa.map_blocks(
                _apply_block, model, method, names,
                drop_axis=1, dtype=probe.dtype, meta=probe[:0],
            )
        return Xa.map_blocks(
            _apply_block, model, method, names,
            chunks=(Xa.chunks[0], (probe.shape[1],)), dtype=probe.dtype, meta=probe[:0],
        )

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with the fused model.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            Samples, shape (n_samples, n_features).

        Returns
        -------
        y_pred : ndarray or dask array
            numpy in, numpy out; a dask input gives a lazy dask array.
        """
        return self._delegate("predict", X)

    def _dask_score(self, X, y):
        check_is_fitted(self)
        blocks = dask_blocks(X, y)
        if blocks.n_features != self.n_features_in_:
            raise ValueError(
                f"X has {blocks.n_features} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input"
            )
        model = delayed(self.fused_estimator_, pure=True)
        names = getattr(self, "feature_names_in_", None)
        y_blocks = blocks.y_blocks or [None] * len(blocks.x_blocks)
        parts = dask.compute(
            *[
                delayed(_score_block, pure=True)(model, xb, yb, self._kind, names)
                for xb, yb in zip(blocks.x_blocks, y_blocks)
            ]
        )
        if self._kind == "clusterer":
            return sum(parts)
        if self._kind == "classifier":
            return sum(p[0] for p in parts) / sum(p[1] for p in parts)
        return _r2_from_parts(parts)

    def _score(self, X, y, sample_weight, in_memory_score):
        """A dask input is scored block by block on the workers, else in memory."""
        if is_dask_input(X):
            if sample_weight is not None:
                raise ValueError("sample_weight is not supported with dask inputs in score")
            return float(self._dask_score(X, y))
        return float(in_memory_score(X, y, sample_weight=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            inner = get_tags(self.estimator)
        except (AttributeError, TypeError, ValueError):
            return tags
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.sparse = False
        tags.target_tags.multi_output = inner.target_tags.multi_output
        tags.target_tags.single_output = inner.target_tags.single_output
        if tags.classifier_tags is not None and inner.classifier_tags is not None:
            tags.classifier_tags = copy.deepcopy(inner.classifier_tags)
        if inner.transformer_tags is not None and hasattr(self, "transform"):
            tags.transformer_tags = copy.deepcopy(inner.transformer_tags)
        return tags


_PARAMS_DOC = """
    Parameters
    ----------
    estimator : estimator
        The scikit-learn {kind} fitted on every partition (it is cloned, never
        changed). Parameter averaging supports the linear models of
        ``daskfuse.fusion.Weighted``.
    fusion : str or daskfuse.fusion.Fuser, default="auto"
        How the partition models are fused: ``"exact"`` (sufficient statistics),
        ``"average"``, ``"weighted"`` (parameter averaging), ``"recluster"``
        (k-means), ``"trees"`` (forests), ``"vote"``, ``"stack"``, or a
        :class:`~daskfuse.fusion.Fuser`. ``"auto"`` picks, in this order, the first
        that applies: exact, weighted, recluster, trees, vote (soft where the
        estimator has ``predict_proba``). The chosen strategy is ``fusion_``.
    partition : None, str or daskfuse.partition.Rows, default=None
        How the rows are laid over partitions: a strategy name (``"chunks"``,
        ``"uniform"``, ``"random"``, ``"stratified"``) or a
        :class:`~daskfuse.partition.Rows`. None keeps a dask input's row blocks and
        splits an in-memory input into ``n_partitions`` contiguous parts. A
        :class:`~daskfuse.partition.Columns` splits the features instead (vertical
        partitioning, see :mod:`daskfuse.vertical`): ``fusion`` is then ``"auto"``,
        ``"backfit"`` or ``"stack"``, and backfitting adds a ``history_`` of rounds.
    n_partitions : int, "auto" or None, default=None
        Number of partitions (a shortcut for ``partition=Rows(n_partitions)``).
        ``"auto"`` (and None for in-memory data) is one per scheduler thread.
    split_every : int or None, default=None
        Fan-in of the fusion tree (>= 2); None reads the dask config key
        ``daskfuse.split-every`` (default 8).
    random_state : int, numpy Generator or None, default=None
        Seeds the row shuffle of ``"random"``/``"stratified"`` partitioning and,
        when given, each partition's estimator (one derived seed per partition), so
        that results are reproducible.
    verbose : int, default=0
        Show a progress bar while fitting (``distributed.progress`` under a
        ``Client``, dask's ``ProgressBar`` otherwise).
"""

_ATTRS_DOC = """
    Attributes
    ----------
    fused_estimator_ : estimator
        The fused model: a plain fitted scikit-learn estimator, usable without dask.
    fusion_ : daskfuse.fusion.Fuser
        The fusion strategy used.
    partition_ : daskfuse.partition.Rows
        The partitioning used (resolved count and strategy).
    n_partitions_ : int
        Number of partitions fitted.
    split_every_ : int
        Fan-in of the fusion tree used.
    partition_report_ : pandas.DataFrame
        One row per partition: ``partition``, ``rows``, ``class_counts``,
        ``train_score``, ``holdout_score``, ``weight`` (its weight in the fusion),
        ``n_iter`` (the solver's iterations, where it reports them), ``fit_seconds``
        (the estimator's ``fit``), ``task_seconds`` (the whole fit task) and
        ``worker`` (the address of the worker that ran it).
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : ndarray of str
        Column names seen in fit, when X had string column names.
"""


class FusedClassifier(ClassifierMixin, _FusedBase):
    __doc__ = (
        """Fit a classifier per data partition on dask and fuse the models into one.

    Each partition of the rows is fitted by one dask task on the worker that holds
    it; a tree of ``combine`` tasks (fan-in ``split_every``) fuses the partial models
    and only the fused model comes back to the client. The class list of the fused
    model is the union of the partitions' classes; a partition that lacks a class is
    aligned by label.
"""
        + _PARAMS_DOC.format(kind="classifier")
        + _ATTRS_DOC
        + """    classes_ : ndarray
        The class labels.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from daskfuse import FusedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = FusedClassifier(LogisticRegression(), n_partitions=4).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True
    >>> type(clf.fused_estimator_).__name__
    'LogisticRegression'
    """
    )

    _kind = "classifier"

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the fused model, shape (n_samples, n_classes).

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame

        Returns
        -------
        proba : ndarray or dask array
        """
        return self._delegate("predict_proba", X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame

        Returns
        -------
        log_proba : ndarray or dask array
        """
        return self._delegate("predict_log_proba", X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the fused model.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame

        Returns
        -------
        scores : ndarray or dask array
            Shape (n_samples,) for two classes, else (n_samples, n_classes).
        """
        return self._delegate("decision_function", X)

    def score(self, X, y, sample_weight=None):
        """Accuracy of the fused model on ``X``, ``y`` (a float).

        Dask inputs are scored block by block on the workers.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
        y : array-like or dask collection
        sample_weight : array-like, default=None
            In-memory inputs only.

        Returns
        -------
        score : float
        """
        return self._score(X, y, sample_weight, super().score)


class FusedRegressor(RegressorMixin, _FusedBase):
    __doc__ = (
        """Fit a regressor per data partition on dask and fuse the models into one.

    Each partition of the rows is fitted by one dask task on the worker that holds
    it; a tree of ``combine`` tasks (fan-in ``split_every``) fuses the partial models
    and only the fused model comes back to the client.
"""
        + _PARAMS_DOC.format(kind="regressor")
        + _ATTRS_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from daskfuse import FusedRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = X @ [1.0, 2.0, 3.0] + 0.5
    >>> reg = FusedRegressor(Ridge(alpha=1e-6), n_partitions=4).fit(X, y)
    >>> bool(np.allclose(reg.fused_estimator_.coef_, [1, 2, 3], atol=1e-3))
    True
    """
    )

    _kind = "regressor"

    def score(self, X, y, sample_weight=None):
        """R² of the fused model on ``X``, ``y`` (a float).

        Dask inputs are scored block by block on the workers.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
        y : array-like or dask collection
        sample_weight : array-like, default=None
            In-memory inputs only.

        Returns
        -------
        score : float
        """
        return self._score(X, y, sample_weight, super().score)



class FusedTransformer(TransformerMixin, _FusedBase):
    __doc__ = (
        """Fit a transformer per data partition on dask and fuse them into one.

    For scalers and decompositions (``StandardScaler``, ``MinMaxScaler``,
    ``MaxAbsScaler``, ``PCA``, ``TruncatedSVD``) exact fusion merges sufficient
    statistics, so the fused transformer equals the one fitted on all rows. It is
    usable inside a scikit-learn ``Pipeline``.
"""
        + _PARAMS_DOC.format(kind="transformer")
        + _ATTRS_DOC
    )

    _kind = "transformer"

    def transform(self, X):
        """Transform ``X`` with the fused transformer.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame

        Returns
        -------
        X_new : ndarray or dask array
        """
        return self._delegate("transform", X)

    @available_if(_estimator_has("inverse_transform"))
    def inverse_transform(self, X):
        """Map transformed data back with the fused transformer.

        Parameters
        ----------
        X : array-like or dask array

        Returns
        -------
        X_original : ndarray or dask array
        """
        check_is_fitted(self)
        if is_dask_input(X):
            model = delayed(self.fused_estimator_, pure=True)
            Xa = dask_to_array(X)
            return Xa.map_blocks(
                _apply_block, model, "inverse_transform", None,
                chunks=(Xa.chunks[0], (self.n_features_in_,)), dtype=float,
            )
        return self.fused_estimator_.inverse_transform(X)

    def get_feature_names_out(self, input_features=None):
        """Output feature names of the fused transformer.

        Parameters
        ----------
        input_features : array-like of str or None, default=None

        Returns
        -------
        feature_names_out : ndarray of str
        """
        check_is_fitted(self)
        return self.fused_estimator_.get_feature_names_out(input_features)


class FusedClusterer(ClusterMixin, _FusedBase):
    __doc__ = (
        """Fit a clusterer per data partition on dask and fuse them into one.

    ``KMeans`` and ``MiniBatchKMeans`` are fused by reclustering the partitions'
    centroids weighted by their cluster sizes (never by averaging centroids, which
    label permutation breaks).
"""
        + _PARAMS_DOC.format(kind="clusterer")
        + _ATTRS_DOC
        + """    labels_ : ndarray or dask array
        Cluster of each training row (lazy for a dask input).
"""
    )

    _kind = "clusterer"

    def fit(self, X, y=None):
        """Fit one clusterer per partition and fuse them into one.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            Training data, shape (n_samples, n_features).
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        super().fit(X, None)
        self.labels_ = self.predict(X)
        return self

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Nearest cluster of each sample.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame

        Returns
        -------
        labels : ndarray or dask array
        """
        return self._delegate("predict", X)

    @available_if(_estimator_has("transform"))
    def fit_transform(self, X, y=None):
        """Fit, then return the distances of ``X`` to the fused cluster centres.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
        y : None
            Ignored.

        Returns
        -------
        distances : ndarray or dask array
        """
        return self.fit(X).transform(X)

    @available_if(_estimator_has("transform"))
    def transform(self, X):
        """Distances to the fused cluster centres.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame

        Returns
        -------
        distances : ndarray or dask array
        """
        return self._delegate("transform", X)

    @available_if(_estimator_has("score"))
    def score(self, X, y=None):
        """The fused clusterer's score on ``X`` (for KMeans: minus the inertia).

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        if is_dask_input(X):
            return float(self._dask_score(X, None))
        return float(self._delegate("score", X))
