"""The scikit-learn meta-estimators: :class:`FusedClassifier` and :class:`FusedRegressor`."""

from __future__ import annotations

import copy
import warnings

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClusterMixin,
    MetaEstimatorMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _rows, vertical
from ._graph import EMPTY, convergence_note, estimator_allows_nan, r2_from_sums
from ._inputs import (
    aligned,
    check_dense,
    dask_blocks,
    dask_to_array,
    float_array,
    is_dask_input,
)
from ._trainer import TrainSpec, check_params
from .partition import Columns

__all__ = ["FusedClassifier", "FusedClusterer", "FusedRegressor", "FusedTransformer"]


def _estimator_has(attr):
    def check(self):
        if hasattr(self, "fused_estimator_"):
            return hasattr(self.fused_estimator_, attr)
        return hasattr(self.estimator, attr)

    return check


def _apply_block(block, estimator, method, feature_names, empty=None):
    """``estimator.method`` on one block; ``empty`` (the output of 0 rows) for a block
    without rows, which scikit-learn refuses (a dask DataFrame after a filter has them)."""
    # Fused models hold float64 parameters (statistics are merged in float64); some
    # estimators (k-means) need the input in the dtype of their parameters.
    block = aligned(float_array(block))
    if len(block) == 0 and empty is not None:
        return empty
    if feature_names is not None:
        block = pd.DataFrame(block, columns=feature_names)
    return getattr(estimator, method)(block)


def _score_block(estimator, X, y, kind, feature_names):
    """Sufficient statistics of the score on one block (a ``daskfuse-score`` task).

    A block without rows adds nothing. A classifier's ``y`` is 1-D or a column
    vector (``_dask_score`` has checked which).
    """
    if kind == "clusterer":
        return 0.0 if len(X) == 0 else float(_apply_block(X, estimator, "score", feature_names))
    y = aligned(np.asarray(y))
    if len(X) == 0:
        return (0.0, 0) if kind == "classifier" else {"n": 0}
    pred = _apply_block(X, estimator, "predict", feature_names)
    if kind == "classifier":
        y = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.shape != pred.shape:
            raise ValueError(
                f"y has shape {y.shape} in a block where the predictions have {pred.shape}"
            )
        return float(np.sum(pred == y)), len(y)
    y = y.reshape(len(y), -1).astype(float)
    pred = np.asarray(pred, dtype=float).reshape(len(y), -1)
    if pred.shape != y.shape:
        raise ValueError(
            f"y has {y.shape[1]} target column(s) but the model predicts {pred.shape[1]}"
        )
    mean = y.mean(axis=0)
    return {
        "n": len(y),
        "mean": mean,
        "m2": ((y - mean) ** 2).sum(axis=0),
        "ss_res": ((y - pred) ** 2).sum(axis=0),
    }


def _check_score_target(y):
    """A classifier's dask-scored ``y``: 1-D, or a column vector that is raveled with
    scikit-learn's ``DataConversionWarning``; more columns raise ``ValueError``."""
    if isinstance(y, dd.DataFrame):
        shape, what = (y.shape[0], len(y.columns)), "a dask DataFrame"
    else:
        shape = getattr(y, "shape", None) or np.shape(y)
        what = f"a {type(y).__name__}"
    if len(shape) == 1:
        return
    if len(shape) == 2 and shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change "
            "the shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning,
            stacklevel=5,  # the caller of score
        )
        return
    columns = shape[1] if len(shape) == 2 else None
    raise ValueError(
        "y must be 1-dimensional (or a column vector) to score a classifier; got "
        f"{what} of {len(shape)} dimension(s)"
        + ("" if columns is None else f" with {columns} columns")
    )


def _r2_from_parts(parts):
    n, mean, m2, ss_res = 0, 0.0, 0.0, 0.0
    for p in parts:
        if p["n"] == 0:
            continue
        # Chan et al.'s pairwise update of the total sum of squares
        delta = p["mean"] - mean
        total = n + p["n"]
        m2 = m2 + p["m2"] + delta**2 * n * p["n"] / total
        mean = mean + delta * p["n"] / total
        n = total
        ss_res = ss_res + p["ss_res"]
    return float(np.mean(r2_from_sums(ss_res, m2)))


def _check_two_classes(fused, kind):
    """A classifier needs two classes; a dask ``y`` is only seen whole in the fused model."""
    classes = getattr(fused, "classes_", None)
    if kind == "classifier" and classes is not None and len(classes) < 2:
        raise ValueError(
            f"y holds {len(classes)} class{'' if len(classes) == 1 else 'es'}"
            f"{f' ({classes[0]})' if len(classes) else ''}; a classifier needs samples of "
            "at least 2 classes"
        )


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
        rounds=1,
        tol=1e-4,
        local_epochs=1,
        proximal=0.0,
        random_state=None,
        on_error="raise",
        min_partitions=1,
        verbose=0,
    ):
        self.estimator = estimator
        self.fusion = fusion
        self.partition = partition
        self.n_partitions = n_partitions
        self.split_every = split_every
        self.rounds = rounds
        self.tol = tol
        self.local_epochs = local_epochs
        self.proximal = proximal
        self.random_state = random_state
        self.on_error = on_error
        self.min_partitions = min_partitions
        self.verbose = verbose

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
            Computes to the fused estimator and the list of partition reports. With
            ``rounds`` > 1 (or a strategy with feedback passes) it is the first pass.
        """
        return self._trainer().graph(self._train_spec(), X, y)

    def _train_spec(self):
        """The parameters as the trainer sees them, after the checks every trainer shares."""
        params = TrainSpec(
            owner=type(self).__name__, kind=self._kind, **self.get_params(deep=False)
        )
        check_params(params)
        return params

    def _trainer(self):
        """The trainer of the partitioning: column blocks or row partitions."""
        return vertical if isinstance(self.partition, Columns) else _rows

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
        self._clear_fitted()
        try:
            result = self._trainer().train(self._train_spec(), X, y)
            _check_two_classes(result.fused, self._kind)
        except BaseException:
            self._clear_fitted()
            raise
        # set only once everything is computed: a failed fit leaves no attribute half-set
        for name, value in result.attributes().items():
            setattr(self, name, value)
        skipped = result.skipped
        # blocks without rows are left out of every fusion without a word
        if len(skipped):
            skipped = skipped.loc[skipped["error"] != EMPTY]
        if len(skipped):
            n_rows = result.report["rows"].sum()
            warnings.warn(
                f"{type(self).__name__}: {len(skipped)} of {self.n_partitions_} partitions "
                "were skipped (on_error='skip') and left out of the fusion"
                + (
                    f" (the data has fewer rows ({int(n_rows)}) than partitions)"
                    if n_rows < self.n_partitions_
                    else ""
                )
                + ": "
                + "; ".join(
                    f"partition {p}: {e}" for p, e in zip(skipped["partition"], skipped["error"])
                ),
                UserWarning,
                stacklevel=2,
            )
        note = convergence_note(result.report, self.estimator)
        if note is not None:
            warnings.warn(f"{type(self).__name__}: {note}", ConvergenceWarning, stacklevel=2)
        return self

    # ------------------------------------------------------------------ predict
    def _delegate(self, method, X):
        check_is_fitted(self)
        estimator = self.fused_estimator_
        if is_dask_input(X):
            return self._delegate_dask(method, X)
        check_dense(X)
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
        # a block without rows gives probe[:0]: (0,) or (0, k), of the output's dtype
        if probe.ndim == 1:
            return Xa.map_blocks(
                _apply_block, model, method, names, probe[:0],
                drop_axis=1, dtype=probe.dtype, meta=probe[:0],
            )
        return Xa.map_blocks(
            _apply_block, model, method, names, probe[:0],
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
        if self._kind == "classifier":
            _check_score_target(y)
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
        classifier = self._kind == "classifier"
        rows = sum(p[1] if classifier else p["n"] for p in parts)
        if rows == 0:
            raise ValueError(
                f"X has 0 rows in all of its {len(parts)} blocks: there is nothing to score"
            )
        if classifier:
            return sum(p[0] for p in parts) / rows
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
        (k-means), ``"trees"`` (forests), ``"cascade"`` (kernel SVMs), ``"vote"``,
        ``"stack"``, ``"secure"`` (secure aggregation), ``"dp"`` (differential
        privacy), or a :class:`~daskfuse.fusion.Fuser`. ``"auto"`` picks, in this
        order, the first that applies: exact, weighted, recluster, trees, cascade,
        vote (soft where the estimator has ``predict_proba``). The chosen strategy
        is ``fusion_``.
    partition : None, str or daskfuse.partition.Rows, default=None
        How the rows are laid over partitions: a strategy name (``"chunks"``,
        ``"uniform"``, ``"random"``, ``"stratified"``) or a
        :class:`~daskfuse.partition.Rows`. None keeps a dask input's row blocks and
        splits an in-memory input into ``n_partitions`` contiguous parts. A
        :class:`~daskfuse.partition.Columns` splits the features instead (vertical
        partitioning, see :mod:`daskfuse.vertical`): ``fusion`` is then ``"auto"``,
        ``"gradient"``, ``"backfit"`` or ``"stack"``, and the global-gradient passes
        and backfitting add a ``history_`` of passes or rounds.
        The parameters of row partitions (``n_partitions``, ``split_every``,
        ``rounds``, ``tol``, ``local_epochs``, ``proximal``, ``on_error="skip"``,
        ``min_partitions``) do not apply to column blocks: any value but their
        default raises ``ValueError`` saying why (the column fusions' own are
        ``GlobalGradient(max_passes=..., tol=...)`` and ``Backfit(max_rounds=..., tol=...)``).
    n_partitions : int, "auto" or None, default=None
        Number of partitions (a shortcut for ``partition=Rows(n_partitions)``).
        ``"auto"`` (and None for in-memory data) is one per scheduler thread.
    split_every : int or None, default=None
        Fan-in of the fusion tree (>= 2); None reads the dask config key
        ``daskfuse.split-every`` (default 8).
    rounds : int, default=1
        Fusion rounds (FedAvg-style). After each fusion the fused model goes back to
        every partition, which trains ``local_epochs`` more from it (a warm start),
        and the results are fused again, until the relative parameter change falls
        to ``tol`` or ``rounds`` rounds have run. The partitions stay persisted on
        their workers between rounds. For the SGD family, Perceptron,
        PassiveAggressive*, LogisticRegression and MLP* with a parameter-averaging
        fusion, and for KMeans/MiniBatchKMeans with ``"recluster"``.
    tol : float, default=1e-4
        Stop the rounds when the relative change of the fused parameters
        (``|theta_r - theta_{{r-1}}| / |theta_{{r-1}}|``) is at most ``tol``.
    local_epochs : int, default=1
        What a partition trains in each round after the first: passes over its rows
        (SGD family, MLP*), solver iterations (LogisticRegression) or k-means
        iterations.
    proximal : float, default=0.0
        FedProx-style proximal strength ``mu``: after every local pass the
        parameters take the proximal step of ``mu / 2 * |theta - theta_global|^2``
        toward the fused model, which keeps skewed partitions from drifting apart
        (SGD family and MLP*; needs ``rounds`` > 1).
    random_state : int, numpy Generator or None, default=None
        Seeds the row shuffle of ``"random"``/``"stratified"`` partitioning and,
        when given, each partition's estimator (one derived seed per partition), so
        that results are reproducible.
    on_error : {{"raise", "skip"}}, default="raise"
        What a partition whose fit task fails does (it cannot be fitted or
        summarised: an estimator error, a single class, no rows, and for a dask
        input NaN or infinity in its rows): ``"raise"`` fails the fit with a
        :class:`~daskfuse.PartitionError` naming the partition; ``"skip"`` leaves it
        out of the fusion, marks it in ``partition_report_`` (``skipped``, ``error``)
        and warns. It covers only the fit tasks. An in-memory ``X`` and ``y`` are
        validated whole before any partition is made, so NaN or infinity there (for
        an estimator that does not accept NaN) raise ``ValueError`` whatever
        ``on_error`` is: drop or impute those rows first. Errors outside the fit
        tasks (reading or splitting the data) and lost workers are not partition
        errors: dask reruns tasks of a lost worker.
    min_partitions : int or float, default=1
        With ``on_error="skip"``, the fewest partitions that must be fitted for the
        fusion to go on, else the fit raises a :class:`~daskfuse.FusionError` naming
        the skipped partitions: an int >= 1 (at most the number of partitions), or a
        float in (0, 1], a fraction of the partitions (rounded up).
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
    partition_ : daskfuse.partition.Rows or daskfuse.partition.Columns
        The partitioning used (resolved count and strategy; for column blocks, the
        columns of each block).
    n_partitions_ : int
        Number of partitions, skipped ones included.
    n_partitions_skipped_ : int
        Partitions left out of the fusion (``on_error="skip"``).
    split_every_ : int
        Fan-in of the fusion tree used (row partitions only).
    partition_report_ : pandas.DataFrame
        One row per partition (row partitions; column blocks have their own):

        - ``partition``, ``rows``;
        - ``class_counts``: ``{label: rows}`` (classifiers; None for the others);
        - ``train_score``: the partition model's own ``score`` (accuracy, R²,
          -inertia) on the rows it was fitted on; for ``"exact"`` least squares
          (``LinearRegression``, ``Ridge``), which fits no partition model, the R²
          of the partition's own solution from its cross-products; None where there
          is no partition model to score (the other ``"exact"`` families) or the
          strategy withholds it (``Secure``, ``DP``);
        - ``train_score_on``: how ``train_score`` was computed: ``"fit"`` (known
          from the fit itself: k-means' inertia), ``"statistics"`` (from the
          partition's summary, all its rows), ``"all"`` (predictions on all
          the rows, for at most 1,000 rows), ``"sample"`` (on every 10th row of a
          larger partition, at most 2,000 rows: predicting every row costs a
          kernel model as much as its fit), None where there is no score;
          ``train_score_rows``: on how many rows;
        - ``start_score``: in the last of several rounds, the previous round's
          fused model scored on the partition's rows; else None;
        - ``holdout_score``: the partition model's score on the rows held out
          from its fit (a strategy's ``holdout``, e.g. ``Weighted(by="score")``);
          else None;
        - ``weight``: its weight in the fusion, where the strategy has one;
        - ``n_iter``: the solver's iterations, where it reports them;
        - ``max_iter_reached``: True where the solver stopped at ``max_iter``
          before converging (linear models, SVMs, MLPs; ``fit`` then raises one
          ``ConvergenceWarning`` that counts these partitions), False where it
          converged, None where it does not apply (other families, later rounds);
        - ``fit_seconds`` (the estimator's ``fit``, with the fits the strategy
          needs while summarising: ``Stack``'s clone fitted on the rows it does not
          hold out; None where no partition model is fitted), ``task_seconds``
          (the whole fit task: rows gathered, checked, fitted, scored and
          summarised);
        - ``worker``: the address of the worker that ran it;
        - ``skipped`` (left out of the fusion by ``on_error="skip"``) and
          ``error`` (why; None for the partitions that were fitted).
    n_rounds_ : int
        Fusion rounds run (1 without ``rounds``; with column blocks, the
        global-gradient passes or backfitting's rounds, 1 for stacking).
    history_ : pandas.DataFrame
        With more than one round: one row per round, ``round``, ``train_score``
        (the fused model's score on all training rows, computed on the workers),
        ``change`` (relative parameter change from the previous round),
        ``seconds``; with parameter averaging also ``kept`` (True for the round
        whose fused model ``fit`` returned: by default the best by training score,
        the last with ``Weighted(keep="last")``).
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : ndarray of str
        Column names seen in fit, when X had string column names.
    privacy_spent_ : tuple of (float, float)
        ``(epsilon, delta)`` spent by the fit (composed over its rounds), for
        differentially private fusion
        (:class:`~daskfuse.fusion.DP`) only.
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
                np.zeros((0, self.n_features_in_)),
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
        try:
            self.labels_ = self.predict(X)
        except BaseException:
            self._clear_fitted()
            raise
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
