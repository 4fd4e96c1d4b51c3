"""The scikit-learn meta-estimators: :class:`FusedClassifier` and :class:`FusedRegressor`."""

from __future__ import annotations

import copy
import numbers
import warnings

import dask
import dask.array as da
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

from . import _pipeline, _rows, vertical
from ._adapters import accepts_objects
from ._graph import EMPTY, ZERO_WEIGHT, convergence_note, estimator_allows_nan, r2_from_sums
from ._inputs import (
    aligned,
    check_dense,
    dask_blocks,
    dask_to_array,
    float_array,
    is_dask_input,
    keeps_dtypes,
    missing_as_nan,
)
from ._trainer import Continued, TrainSpec, check_params
from .exceptions import FusionError
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


def _apply_own_block(block, estimator, method, empty=None):
    """``estimator.method`` on one block in its own dtypes (an estimator that takes
    string columns: :func:`~daskfuse._adapters.accepts_objects`); ``empty`` for a
    block without rows."""
    if len(block) == 0 and empty is not None:
        return empty
    return getattr(estimator, method)(missing_as_nan(block))


def _first_row(blocks):
    """The first row of the first block that has one (the blocks are computed in
    turn: their lengths may be unknown)."""
    for block in blocks:
        block = block.compute()
        if len(block):
            return block.iloc[:1] if hasattr(block, "iloc") else block[:1]
    raise ValueError("X has no rows: every block of it is empty")


def _score_block(estimator, X, y, kind, feature_names, own=False):
    """Sufficient statistics of the score on one block (a ``daskfuse-score`` task).

    A block without rows adds nothing. A classifier's ``y`` is 1-D or a column
    vector (``_dask_score`` has checked which). ``own``: the block goes to the
    estimator in its own dtypes (:func:`_apply_own_block`).
    """
    if kind == "clusterer":
        return 0.0 if len(X) == 0 else float(_apply_block(X, estimator, "score", feature_names))
    y = aligned(np.asarray(y))
    if len(X) == 0:
        return (0.0, 0) if kind == "classifier" else {"n": 0}
    if own:
        pred = _apply_own_block(X, estimator, "predict")
    else:
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


def _declared_classes(classes):
    """``partial_fit``'s ``classes``: sorted unique labels, at least two."""
    declared = np.unique(np.asarray(classes))
    if np.ndim(classes) != 1 or len(declared) < 2:
        raise ValueError(
            "classes must be a 1-D array of at least 2 class labels (every class the "
            f"incremental fit will see); got {classes!r}"
        )
    return declared


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
    def fit_graph(self, X, y=None, sample_weight=None):
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
        sample_weight : array-like of shape (n_samples,), dask array or dask Series, \
default=None
            Per-row weights, as for :meth:`fit`.

        Returns
        -------
        graph : dask.delayed.Delayed
            Computes to the fused estimator and the list of partition reports. With
            ``rounds`` > 1 (or a strategy with feedback passes) it is the first pass.
        """
        return self._trainer().graph(self._train_spec(sample_weight), X, y)

    def _train_spec(self, sample_weight=None):
        """The parameters as the trainer sees them, after the checks every trainer shares."""
        params = TrainSpec(
            owner=type(self).__name__,
            kind=self._kind,
            **self.get_params(deep=False),
            sample_weight=sample_weight,
        )
        check_params(params)
        return params

    def _trainer(self):
        """The trainer of the partitioning: column blocks, or row partitions (a
        Pipeline's steps one by one)."""
        if isinstance(self.partition, Columns):
            return vertical
        return _pipeline if _pipeline.applies(self.estimator) else _rows

    def _clear_fitted(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)

    def fit(self, X, y=None, sample_weight=None):
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
        sample_weight : array-like of shape (n_samples,), dask array or dask Series, \
default=None
            Per-row weights, aligned with the rows of ``X`` (numpy, pandas, or a dask
            collection chunked like ``X``, also with unknown chunk sizes): finite,
            non-negative and not all zero. Each partition's estimator is fitted with
            its rows' weights, and the fusion weighs them: ``Weighted(by="rows")``
            counts total weight instead of rows, exact statistics and the
            global-gradient passes are weighted (the fused model equals the
            estimator fitted on all rows with the same weights). A partition whose
            weights are all zero is left out, like an empty one. Strategies that
            cannot honour weights (and ``partition=Columns(...)``) refuse them with
            the reason, as do estimators whose ``fit`` takes no ``sample_weight``.

        Returns
        -------
        self : object
            The fitted meta-estimator.
        """
        return self._fit(X, y, stacklevel=4, sample_weight=sample_weight)

    def _fit(self, X, y, stacklevel, sample_weight=None, **train_args):
        """Train, then set the fitted attributes; ``train_args`` go to the trainer."""
        self._clear_fitted()
        try:
            result = self._trainer().train(
                self._train_spec(sample_weight), X, y, **train_args
            )
            _check_two_classes(result.fused, self._kind)
        except BaseException:
            self._clear_fitted()
            raise
        self._set_result(result, stacklevel=stacklevel)
        return self

    def _set_result(self, result, stacklevel, start=0):
        """Set the fitted attributes of a trainer's result, then warn about the
        partitions numbered from ``start`` (a ``partial_fit``'s new ones) that were
        skipped or whose solver stopped at ``max_iter``."""
        # set only once everything is computed: a failed fit leaves no attribute half-set
        for name, value in result.attributes().items():
            setattr(self, name, value)
        report = result.report.loc[result.report["partition"] >= start]
        skipped = result.skipped
        skipped = skipped.loc[skipped["partition"] >= start]
        # blocks without rows (or whose rows all weigh 0) are left out of every
        # fusion without a word
        if len(skipped):
            skipped = skipped.loc[~skipped["error"].isin([EMPTY, ZERO_WEIGHT])]
        if len(skipped):
            n_rows = report["rows"].sum()
            warnings.warn(
                f"{type(self).__name__}: {len(skipped)} of {len(report)} partitions "
                "were skipped (on_error='skip') and left out of the fusion"
                + (
                    f" (the data has fewer rows ({int(n_rows)}) than partitions)"
                    if n_rows < len(report)
                    else ""
                )
                + ": "
                + "; ".join(
                    f"partition {p}: {e}" for p, e in zip(skipped["partition"], skipped["error"])
                ),
                UserWarning,
                stacklevel=stacklevel,
            )
        note = convergence_note(report.reset_index(drop=True), self.estimator)
        if note is not None:
            warnings.warn(
                f"{type(self).__name__}: {note}", ConvergenceWarning, stacklevel=stacklevel
            )

    # ------------------------------------------------------------------ partial_fit
    def partial_fit(self, X, y=None, sample_weight=None):
        """Continue the fit with new rows: their partitions join the fused model.

        On an unfitted estimator this is :meth:`fit`. On a fitted one, ``X`` is
        partitioned as :meth:`fit` would (``partition``, ``n_partitions``), each new
        partition is fitted and summarised on its worker, and the summaries are
        combined with the root summary the fit kept (``root_summary_``) and
        finalised again: a batch costs that batch's work, not a refit. Exact fusion
        then equals a fit on all rows seen so far; parameter averaging, voting,
        tree union and reclustering equal the fusion of all partitions so far.

        Strategies whose fused model is not such a merge (stacking, the cascade,
        median/trimmed mean/Krum, newton, ``Secure``/``DP``, given per-partition
        weights), fits of ``rounds`` > 1 and column blocks (``partition=Columns``)
        refuse with a :class:`~daskfuse.FusionError` that gives the reason, and the
        fitted model is left unchanged. A partial fit that fails (a bad batch) leaves
        the fitted model unchanged as well.

        ``partition_report_`` gains the new partitions, numbered after the old ones;
        ``n_partitions_`` counts all of them. A fit that can be continued runs one
        pass, so there is no ``history_``, and ``partial_fit`` adds none.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            New rows, with the features of the fit.
        y : array-like, pandas Series, dask array or dask Series, or None
            Their targets (ignored by transformers and clusterers).
        sample_weight : array-like of shape (n_samples,), dask array or dask Series, \
default=None
            Per-row weights of the new rows, as in :meth:`fit`.

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y, sample_weight=sample_weight)

    def _partial_fit(self, X, y, classes=None, stacklevel=4, sample_weight=None):
        """A fit (unfitted), or the fit continued with the new partitions of ``X``."""
        if isinstance(self.partition, Columns):
            raise FusionError(
                f"{type(self).__name__}.partial_fit needs row partitions: "
                f"partition={self.partition!r} fuses column blocks, which keep no summary "
                "that new rows can join; refit on all rows"
            )
        declared = None if classes is None else _declared_classes(classes)
        if not hasattr(self, "fused_estimator_"):
            if declared is not None:
                return self._fit(X, y, stacklevel + 1, sample_weight, classes=declared)
            return self._fit(X, y, stacklevel + 1, sample_weight)
        self._check_features_like_fit(X)
        continued = self._continued()
        if declared is not None and not np.array_equal(declared, continued.root.classes):
            raise ValueError(
                f"classes={declared.tolist()} differs from the classes of the first "
                f"partial_fit, {np.asarray(continued.root.classes).tolist()}"
            )
        # a failed partial_fit leaves the fitted model as it was: nothing is set before
        train = self._trainer().train
        result = train(self._train_spec(sample_weight), X, y, continued=continued)
        self._set_result(result, stacklevel=stacklevel, start=continued.start)
        return self

    def _check_features_like_fit(self, X):
        """Raise ``ValueError`` if ``X``'s features differ from the fit's (no data pass)."""
        if is_dask_input(X) and keeps_dtypes(accepts_objects(self.estimator), X):
            # string columns: the names and count, from the collection's meta
            validate_data(self, X._meta, reset=False, skip_check_array=True)
        elif is_dask_input(X):
            self._check_dask_features(X)
        else:
            validate_data(self, X, reset=False, skip_check_array=True)

    def _continued(self):
        """What ``partial_fit`` continues from; ``FusionError`` with the reason where
        the fit cannot be continued (the fitted model is then unchanged)."""
        reason = self._partial_fit_reason()
        if reason is not None:
            raise FusionError(
                f"{type(self).__name__}.partial_fit cannot continue this fit: {reason}. "
                "The fitted model is unchanged"
            )
        return Continued(
            fusion=self.fusion_,
            root=self.root_summary_,
            report=self.partition_report_,
            n_features_in=self.n_features_in_,
            feature_names_in=getattr(self, "feature_names_in_", None),
            model=self.fused_estimator_,
        )

    def _partial_fit_reason(self):
        """Why the fit cannot be continued with new partitions, or None."""
        if isinstance(self.rounds, numbers.Integral) and self.rounds > 1:
            return (
                f"rounds={self.rounds} trains every partition again from each round's "
                "fused model, which new partitions cannot join"
            )
        reason = self.fusion_.tags(_pipeline.fused_last(self.estimator)).partial_fit_reason
        if reason is not None:
            return reason
        if getattr(self, "root_summary_", None) is None:
            return (
                "it kept no root summary (a model saved without one, or fitted in "
                "several passes); refit on all rows"
            )
        return None

    # ------------------------------------------------------------------ predict
    def _delegate(self, method, X):
        check_is_fitted(self)
        estimator = self.fused_estimator_
        if keeps_dtypes(accepts_objects(self.estimator), X):
            return self._delegate_own(method, X)
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

    def _delegate_own(self, method, X):
        """``method`` on ``X`` in its own dtypes, strings among them (the fused model
        validates it); a dask input gives a dask array of unknown chunk sizes, of
        scipy sparse blocks where the model's output is sparse."""
        estimator = self.fused_estimator_
        if not is_dask_input(X):
            check_dense(X)
            return _apply_own_block(X, estimator, method)
        blocks = dask_blocks(X, objects=True).x_blocks
        probe = _apply_own_block(_first_row(blocks), estimator, method)
        model = delayed(estimator, pure=True)
        parts = [
            da.from_delayed(
                delayed(_apply_own_block, pure=True)(block, model, method, probe[:0]),
                shape=(np.nan, *probe.shape[1:]),
                dtype=probe.dtype,
                meta=probe[:0],
            )
            for block in blocks
        ]
        return da.concatenate(parts, axis=0)

    def _check_dask_features(self, X):
        """``X`` as a dask array, after checking its columns against the fit's."""
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
        return Xa

    def _delegate_dask(self, method, X):
        names = getattr(self, "feature_names_in_", None)
        Xa = self._check_dask_features(X)
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
        own = keeps_dtypes(accepts_objects(self.estimator), X)
        blocks = dask_blocks(X, y, objects=own)
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
                delayed(_score_block, pure=True)(model, xb, yb, self._kind, names, own)
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
        tags.input_tags.allow_nan = estimator_allows_nan(self.estimator)
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
        The fusion strategy used (for a ``Pipeline`` fused step by step, the final
        step's; ``pipeline_steps_`` has every step's).
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
        - ``fit_seconds`` (the estimator's ``fit``, with the fitting the strategy
          does while summarising: ``Stack``'s clone fitted on the rows it does not
          hold out and its outputs on the held-out rows, the meta-learner's
          training rows; None where no partition model is fitted), ``task_seconds``
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
    root_summary_ : daskfuse._trainer.RootSummary
        What :meth:`partial_fit` continues from: the merged summary of every
        partition so far, before ``finalize`` (statistics, or the partitions' models
        for vote, trees and recluster; never rows), and a classifier's classes. Only
        where the strategy can be continued (its tags' ``partial_fit_reason`` is
        None) and the fit ran one pass.
    pipeline_steps_ : pandas.DataFrame
        For a scikit-learn ``Pipeline`` as ``estimator`` (row partitions): one row per
        step, nested pipelines flattened, ``step`` (names joined by ``"__"``),
        ``estimator`` (class name or ``"passthrough"``), ``fusion`` (the repr of the
        strategy that fitted it: ``Exact()`` for every transformer step and the
        meta-estimator's ``fusion`` for the final one when the Pipeline is fused step
        by step; the whole Pipeline's strategy on every row when a transformer step
        cannot be fused exactly and the Pipeline is fused as a whole; None for
        ``"passthrough"``), ``reason`` (why the step forced fusion as a whole, else
        None) and ``seconds``. ``fused_estimator_`` is then one plain fitted Pipeline
        with the same step names (see :mod:`daskfuse._pipeline`).
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

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Continue the fit with new rows: their partitions join the fused model.

        As :meth:`FusedRegressor.partial_fit` (on an unfitted estimator a
        :meth:`fit`; the strategies that cannot continue refuse with the reason). The
        classes are fixed by the first call: ``classes`` if given (every class the
        incremental fit will see; a batch may lack some), else the labels of the
        first batch. A later batch holding another label raises ``ValueError``: the
        kept summary has no place for a class declared nowhere, so no strategy
        adds one later.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            New rows, with the features of the fit.
        y : array-like, pandas Series, dask array or dask Series
            Their labels.
        classes : array-like of shape (n_classes,) or None, default=None
            Every class, at the first call (as scikit-learn's ``partial_fit``); at
            later calls it may be given again but must not change.
        sample_weight : array-like of shape (n_samples,), dask array or dask Series, \
default=None
            Per-row weights of the new rows, as in :meth:`fit`.

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y, classes, sample_weight=sample_weight)

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
    statistics, so the fused transformer equals the one fitted on all rows. So does
    it for ``OneHotEncoder``, ``OrdinalEncoder``, ``SimpleImputer`` (mean,
    most_frequent, constant), ``KBinsDiscretizer`` (uniform), ``PolynomialFeatures``,
    ``FunctionTransformer`` and ``ColumnTransformer``/``FeatureUnion`` of these; the
    encoders take string and categorical columns of pandas and dask DataFrames. It is
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

    def fit(self, X, y=None, sample_weight=None):
        """Fit one clusterer per partition and fuse them into one.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            Training data, shape (n_samples, n_features).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), dask array or dask Series, \
default=None
            Per-row weights, as for :meth:`FusedClassifier.fit`.

        Returns
        -------
        self : object
        """
        super().fit(X, None, sample_weight=sample_weight)
        try:
            self.labels_ = self.predict(X)
        except BaseException:
            self._clear_fitted()
            raise
        return self

    def partial_fit(self, X, y=None, sample_weight=None):
        """Continue the fit with new rows: their partitions join the fused model.

        As :meth:`FusedRegressor.partial_fit`; ``labels_`` then holds the cluster of
        each row of this batch (as scikit-learn's ``MiniBatchKMeans.partial_fit``).

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
            New rows, with the features of the fit.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), dask array or dask Series, \
default=None
            Per-row weights of the new rows, as in :meth:`fit`.

        Returns
        -------
        self : object
        """
        self._partial_fit(X, None, sample_weight=sample_weight)
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
    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit, then return the distances of ``X`` to the fused cluster centres.

        Parameters
        ----------
        X : array-like, pandas DataFrame, dask array or dask DataFrame
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), dask array or dask Series, \
default=None
            Per-row weights, as for :meth:`fit`.

        Returns
        -------
        distances : ndarray or dask array
        """
        return self.fit(X, sample_weight=sample_weight).transform(X)

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
