"""The trainer seam: what a fit hands a trainer (:class:`TrainSpec`) and what it gets back
(:class:`FitResult`).

:meth:`daskfuse.estimators._FusedBase.fit` validates the parameters every partitioning
shares (:func:`check_params`), asks the partitioning for its trainer (the row trainer
:mod:`daskfuse._rows` or the column trainer :mod:`daskfuse.vertical`), runs its
``train(params, X, y)`` and sets the fitted attributes once, from
:meth:`FitResult.attributes`. A trainer gets everything it needs in the frozen
:class:`TrainSpec` and never calls back into the meta-estimator (the shape of
scikit-learn's ``_fit_single_estimator`` and xgboost's functional ``train``).
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from typing import Any

import dask
import pandas as pd
from sklearn.base import BaseEstimator, is_classifier, is_clusterer, is_regressor
from sklearn.utils import get_tags

from ._validation import check_int, check_real, is_int, is_real

__all__ = [
    "Continued",
    "FitResult",
    "RootSummary",
    "TrainSpec",
    "check_params",
    "check_split_every",
]

#: the estimator check of each kind of meta-estimator: (test, what the message asks for)
_KIND_CHECKS = {
    "classifier": (
        is_classifier,
        "a classifier as estimator; got {name}: use FusedRegressor for regressors",
    ),
    "regressor": (
        is_regressor,
        "a regressor as estimator; got {name}: use FusedClassifier for classifiers",
    ),
    "transformer": (
        lambda est: hasattr(est, "transform"),
        "a transformer (an estimator with transform) as estimator; got {name}",
    ),
    "clusterer": (is_clusterer, "a clusterer as estimator; got {name}"),
}


@dataclass(frozen=True)
class TrainSpec:
    """The meta-estimator's parameters as a trainer sees them (not yet validated).

    Attributes
    ----------
    owner : str
        The meta-estimator's class name, for messages and task keys.
    kind : {"classifier", "regressor", "transformer", "clusterer"}
        What the meta-estimator is.
    estimator, fusion, partition, n_partitions, split_every, rounds, tol, local_epochs, \
proximal, random_state, on_error, min_partitions, verbose
        The constructor parameters, as given.
    """

    owner: str
    kind: str
    estimator: Any
    fusion: Any = "auto"
    partition: Any = None
    n_partitions: Any = None
    split_every: Any = None
    rounds: Any = 1
    tol: Any = 1e-4
    local_epochs: Any = 1
    proximal: Any = 0.0
    random_state: Any = None
    on_error: Any = "raise"
    min_partitions: Any = 1
    verbose: Any = 0

    @property
    def classifier(self):
        """Whether the meta-estimator is a classifier."""
        return self.kind == "classifier"

    @property
    def supervised(self):
        """Whether the meta-estimator learns from targets."""
        return self.kind in ("classifier", "regressor")

    @property
    def multi_output(self):
        """Whether the estimator takes 2-D targets (its scikit-learn tags)."""
        try:
            return bool(get_tags(self.estimator).target_tags.multi_output)
        except (AttributeError, TypeError, ValueError):
            return False


@dataclass
class RootSummary:
    """What a fit keeps to be continued by ``partial_fit``: its root summary.

    Kept (as ``root_summary_``) for the strategies whose tags answer
    ``partial_fit_reason=None``, after a fit of one pass over row partitions.

    Attributes
    ----------
    summary : object
        The strategy's merged summary of every partition fitted so far, before
        ``finalize`` (a :class:`~daskfuse.fusion.exact.Gram`,
        :class:`~daskfuse.fusion.average.ParameterSum`, ...): statistics or the
        partitions' models, never their rows.
    classes : ndarray or None
        A classifier's classes: those declared at the first ``partial_fit``
        (``classes=``), else those of the fitted model. Later batches may hold no
        other label.
    """

    summary: Any
    classes: Any = None


@dataclass(frozen=True)
class Continued:
    """What the row trainer needs to continue a fit with new partitions (``partial_fit``).

    Attributes
    ----------
    fusion : Fuser
        The fit's strategy, as resolved (``"auto"`` keeps what it chose).
    root : RootSummary
    report : pandas.DataFrame
        The partition report so far; the new partitions are numbered after it.
    n_features_in : int
    feature_names_in : ndarray of str or None
    model : estimator or None
        The fitted model being continued (the step-by-step Pipeline trainer transforms
        the new rows with its fused transformers).
    """

    fusion: Any
    root: RootSummary
    report: pd.DataFrame
    n_features_in: int
    feature_names_in: Any = None
    model: Any = None

    @property
    def start(self):
        """The number of the first new partition."""
        return len(self.report)


@dataclass
class FitResult:
    """What a trainer returns: everything the meta-estimator's fitted attributes hold.

    Attributes
    ----------
    fused : estimator
        The fused model.
    fusion : object
        The strategy that fused it.
    partition : Rows or Columns
        The partitioning used, resolved.
    report : pandas.DataFrame
        One row per partition (or column block), sorted by ``partition``.
    n_features_in : int
    feature_names_in : ndarray of str or None
    history : pandas.DataFrame or None
        One row per round, where there were rounds.
    n_rounds : int
    split_every : int or None
        Fan-in of the fusion tree (row partitions only).
    privacy_spent : tuple of (float, float) or None
    pipeline_steps : pandas.DataFrame or None
        For a Pipeline: one row per step, what fitted it (:mod:`daskfuse._pipeline`).
    root : RootSummary or None
        The root summary, where the strategy can continue (``partial_fit``).
    """

    fused: Any
    fusion: Any
    partition: Any
    report: pd.DataFrame
    n_features_in: int
    feature_names_in: Any = None
    history: pd.DataFrame | None = None
    n_rounds: int = 1
    split_every: int | None = None
    privacy_spent: Any = None
    pipeline_steps: pd.DataFrame | None = None
    root: RootSummary | None = None

    @property
    def skipped(self):
        """The report rows of the partitions left out of the fusion."""
        if "skipped" not in self.report:
            return self.report.iloc[:0]
        return self.report.loc[self.report["skipped"].astype(bool)]

    def attributes(self):
        """The fitted attributes of the meta-estimator, ``{name_: value}``."""
        out = {
            "fused_estimator_": self.fused,
            "fusion_": self.fusion,
            "partition_": self.partition,
            "n_partitions_": len(self.report),
            "n_partitions_skipped_": len(self.skipped),
            "partition_report_": self.report,
            "n_rounds_": self.n_rounds,
            "n_features_in_": self.n_features_in,
        }
        optional = {
            "split_every_": self.split_every,
            "history_": self.history,
            "privacy_spent_": self.privacy_spent,
            "pipeline_steps_": self.pipeline_steps,
            "feature_names_in_": self.feature_names_in,
            "classes_": getattr(self.fused, "classes_", None),
            "root_summary_": self.root,
        }
        out.update({name: value for name, value in optional.items() if value is not None})
        return out


def report_frame(reports):
    """The partition reports (a list of dicts) as one frame sorted by partition."""
    return pd.DataFrame(reports).sort_values("partition").reset_index(drop=True)


def check_estimator(params):
    """Raise ``TypeError`` unless ``params.estimator`` fits the meta-estimator's kind."""
    est = params.estimator
    if not (hasattr(est, "fit") and hasattr(est, "get_params")):
        raise TypeError(
            f"estimator must be a scikit-learn estimator with fit and get_params; "
            f"got {type(est).__name__} {est!r}"
        )
    test, wanted = _KIND_CHECKS.get(params.kind, (None, None))
    if test is not None and not test(est):
        raise TypeError(f"{params.owner} needs " + wanted.format(name=type(est).__name__))


def check_passes(params):
    """Validate ``rounds``, ``local_epochs``, ``tol`` and ``proximal`` (types and ranges)."""
    check_int(params.rounds, "rounds", low=1)
    check_int(params.local_epochs, "local_epochs", low=1)
    check_real(params.tol, "tol", low=0)
    check_real(params.proximal, "proximal", low=0)


def check_split_every(params):
    """``split_every`` (None: the ``daskfuse.split-every`` config, default 8) as an int."""
    s = params.split_every
    if s is None:
        s = dask.config.get("daskfuse.split-every", 8)
    check_int(s, "split_every", expected="an int >= 2 or None", error=TypeError)
    if s < 2:
        raise ValueError(f"split_every must be >= 2 (the fan-in of the fusion tree); got {s}")
    return int(s)


def check_on_error(params):
    """Validate ``on_error`` and ``min_partitions``."""
    if not (isinstance(params.on_error, str) and params.on_error in ("raise", "skip")):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {params.on_error!r}")
    m = params.min_partitions
    if not is_real(m):
        raise TypeError(
            "min_partitions must be an int >= 1 or a float in (0, 1] (a fraction of "
            f"the partitions); got {m!r}"
        )
    if is_int(m):
        if m < 1:
            raise ValueError(f"min_partitions must be >= 1; got {m}")
    elif not 0 < m <= 1:
        raise ValueError(
            f"min_partitions as a fraction of the partitions must be in (0, 1]; got {m!r}"
        )


def check_verbose(params):
    """Raise ``TypeError`` unless ``verbose`` is an int or bool."""
    if not isinstance(params.verbose, numbers.Integral):
        raise TypeError(f"verbose must be an int or bool; got {params.verbose!r}")


def check_params(params):
    """Validate, once, what every trainer reads: the estimator, ``rounds``,
    ``local_epochs``, ``tol``, ``proximal``, ``on_error``, ``min_partitions`` and
    ``verbose`` (each trainer checks what only it reads: ``partition``, ``fusion``,
    ``split_every``, and whether a value applies to it)."""
    check_estimator(params)
    check_passes(params)
    check_on_error(params)
    check_verbose(params)


@functools.cache
def _probe_class(owner):
    return type(owner, (BaseEstimator,), {"__module__": __name__})


def validation_probe(owner):
    """A blank estimator named ``owner`` for scikit-learn's ``validate_data``.

    ``validate_data`` records ``n_features_in_`` and ``feature_names_in_`` on it, and
    its messages name the estimator by its class: the meta-estimator's.
    """
    return _probe_class(owner)()
