"""Fusion strategies: how partial models become one model.

Every strategy implements the :class:`Fuser` protocol (summarize, combine,
finalize, and ``tags`` for its capabilities: see :mod:`daskfuse.fusion.base`) and
can be selected by object or by name (``fusion="weighted"``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import is_classifier

from .._resolve import pick_strategy
from ..exceptions import FusionError
from .average import Average, Weighted
from .base import Fuser, FuserTags
from .cascade import Cascade
from .cluster import Recluster
from .ensemble import Stack, Trees, Vote
from .exact import Exact
from .newton import Newton
from .privacy import DP
from .robust import Krum, Median, TrimmedMean
from .secure import Secure

__all__ = [
    "Average",
    "Cascade",
    "DP",
    "Exact",
    "Fuser",
    "FuserTags",
    "Krum",
    "Median",
    "Newton",
    "Recluster",
    "Secure",
    "Stack",
    "Trees",
    "TrimmedMean",
    "Vote",
    "Weighted",
    "available_fusions",
    "prefers_newton",
    "resolve_fusion",
]

#: strategies selectable by name
FUSERS = {
    "average": Average,
    "weighted": Weighted,
    "exact": Exact,
    "recluster": Recluster,
    "trees": Trees,
    "vote": Vote,
    "stack": Stack,
    "median": Median,
    "trimmed_mean": TrimmedMean,
    "krum": Krum,
    "secure": Secure,
    "dp": DP,
    "cascade": Cascade,
    "newton": Newton,
}

#: what ``fusion="auto"`` picks, the first that applies: exact statistics where they
#: exist, parameter averaging for linear models and MLPs, reclustering for k-means,
#: the union of trees for forests, the cascade for kernel SVMs (one SVM close to the
#: SVM on all rows, where a vote keeps every partition's support vectors and loses
#: accuracy), and voting for every other estimator (stacking is never picked: it
#: costs an extra fit per partition; nor are the privacy strategies "secure" and
#: "dp", which the user must ask for)
AUTO_ORDER = ("exact", "weighted", "recluster", "trees", "cascade", "vote")

#: total variation distance between a partition's class distribution and the whole
#: data's from which ``"auto"`` calls the partitions label-skewed
SKEW = 0.4


def prefers_newton(fusion, estimator, rounds=1, class_counts=None):
    """Whether ``fusion="auto"`` takes the global-gradient passes (:class:`Newton`).

    The rule: for the estimators :class:`Newton` supports (convex linear models:
    LogisticRegression, the Poisson, Gamma and Tweedie regressors, LinearSVC and
    LinearSVR with a squared loss), ``"auto"`` picks
    ``"newton"`` where the one-shot fusion is likely poor: the user asks for
    ``rounds > 1``, a partition lacks a class, or a partition's class distribution
    differs from the whole data's by a total variation distance of at least
    :data:`SKEW` (0.4: a 3-class partition with 80% of one class). Elsewhere the
    choice of :data:`AUTO_ORDER` stands.

    Parameters
    ----------
    fusion : str or Fuser
        What the user passed; only ``"auto"`` is ever switched.
    estimator : estimator
    rounds : int, default=1
    class_counts : ndarray of shape (n_partitions, n_classes) or None
        Rows of each class in each partition, where known (in-memory ``y``).
    """
    if not (isinstance(fusion, str) and fusion == "auto") or not Newton().supports(estimator):
        return False
    if rounds > 1:
        return True
    if class_counts is None:
        return False
    counts = np.asarray(class_counts, dtype=float)
    if np.any(counts == 0):
        return True
    shares = counts / counts.sum(axis=1, keepdims=True)
    whole = counts.sum(axis=0) / counts.sum()
    return bool(np.max(0.5 * np.abs(shares - whole).sum(axis=1)) >= SKEW)


def _auto(estimator, alternatives, from_models=False):
    name = next((n for n in AUTO_ORDER if n in alternatives), None)
    if name is None:
        raise FusionError(
            f"fusion='auto' found no strategy for {estimator!r}: "
            + _reasons(estimator, from_models)
        )
    if name == "vote" and is_classifier(estimator) and hasattr(estimator, "predict_proba"):
        return Vote(voting="soft")
    return FUSERS[name]()


def _reasons(estimator, from_models=False):
    """Why each strategy cannot fuse ``estimator``, strategies with one reason together."""
    by_reason = {}
    for name, cls in FUSERS.items():
        fuser = cls()
        reason = fuser.unsupported_reason(estimator)
        if reason is None and from_models and not fuser.tags(estimator).from_models:
            reason = "it needs the partitions' rows, not only fitted models"
        elif reason is None:
            reason = "it applies, but fusion='auto' never picks it: name it"
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())


def available_fusions(estimator, from_models=False):
    """Names of the strategies that can fuse models like ``estimator``.

    Parameters
    ----------
    estimator : estimator
    from_models : bool, default=False
        Only the strategies that fuse fitted models without their rows.
    """
    names = []
    for name, cls in FUSERS.items():
        fuser = cls()
        if fuser.supports(estimator) and (not from_models or fuser.tags(estimator).from_models):
            names.append(name)
    return names


def resolve_fusion(fusion, estimator, from_models=False):
    """The :class:`Fuser` that ``fusion`` names for ``estimator``.

    Parameters
    ----------
    fusion : str or Fuser
        ``"auto"``, a strategy name or a :class:`Fuser` instance.
    estimator : estimator
        The unfitted template; the strategy must apply to it.
    from_models : bool, default=False
        The models are already fitted and their rows are not at hand: ``"auto"``
        picks among the strategies that fuse fitted models.

    Raises
    ------
    ValueError
        ``fusion`` is neither a known name nor a :class:`Fuser`.
    FusionError
        The strategy cannot fuse this kind of estimator.
    """
    alternatives = available_fusions(estimator, from_models)
    fuser = pick_strategy(
        fusion,
        base=Fuser,
        names=FUSERS,
        auto=lambda: _auto(estimator, alternatives, from_models),
        expected=(
            f"fusion must be 'auto', one of {', '.join(map(repr, FUSERS))} or a "
            "daskfuse.fusion.Fuser instance"
        ),
    )
    fuser.check_estimator(estimator, alternatives)
    return fuser
