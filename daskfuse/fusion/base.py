"""The Fuser protocol: the one place that documents it.

A fusion strategy is a monoid over a small *summary* object, so that the tree
reduction may group partitions in any way (any ``split_every``) and still give the
same model. A strategy subclasses :class:`Fuser`, sets ``name`` and ``requirement``
and implements the first four members below; ``tags`` and everything else has a
default.

``supports(estimator) -> bool``
    whether the strategy can fuse models like the unfitted ``estimator``;
    ``check_estimator`` raises a :class:`~daskfuse.exceptions.FusionError` built from
    ``unsupported_reason(estimator)`` (default: ``requirement`` where ``supports`` is
    false) when it cannot.
``summarize(fitted_estimator, X, y, info) -> summary``
    on the worker that holds the partition; ``info`` holds ``index`` (partition
    number), ``n_rows`` (rows the model was fitted on), ``holdout_score``,
    ``classes`` (the global class list, where the tags ask for it), ``seed`` (the
    partition's seed, or None), ``template`` (the unfitted estimator, which tells
    the family when the fitted one is None), ``secret`` (this partition's share of
    ``partition_secrets``, or None) and ``init`` (the previous pass's fused model, or
    None), ``sample_weight`` (the rows' sample weights, or None: see
    :func:`row_weight`). A leaf summary may carry ``report_weight``, the partition's
    weight in the fusion shown in the report's ``weight`` column (absent: None), and,
    where no partition model is fitted, ``report_train_score``, the partition's own
    training score that the strategy read from its statistics (``train_score_on`` then
    says ``"statistics"``). A later pass's leaf summary may carry
    ``report_start_score``, the previous pass's fused model's score on the partition's
    rows where the strategy worked it out on the way (newton: from the margins it
    computes anyway); absent or None, the task scores that model with ``predict``.
``combine(summaries) -> summary``
    every inner node of the tree, any fan-in; associative.
``finalize(summary, template, meta) -> estimator``
    the root: a plain fitted scikit-learn estimator (``meta`` holds
    ``n_features_in_``, ``feature_names_in_``, ``classes``, ``n_partitions``).
``tags(estimator) -> FuserTags``
    every capability question, answered once per estimator: whether the
    partitions are fitted first, need the global classes, share one seed, may hold
    one class, hold rows out for scoring; whether fitted models can be fused
    without their rows; why ``rounds``, ``proximal``, given weights or ``fit``'s
    sample weights do not apply (None where they do); and why a fit cannot be
    continued with new partitions (``partial_fit``: the meta-estimator keeps the root
    summary of the strategies that answer None, combines the new partitions'
    summaries into it and finalises again). See :class:`FuserTags` for the
    defaults; a subclass returns ``dataclasses.replace(super().tags(estimator), ...)``.

Several passes (``rounds`` of the meta-estimators, a cascade's feedback passes):
``passes(rounds)`` is how many to run at most, ``first_estimator(estimator, X, y)``
what a partition fits in the first pass, ``feedback(fused, summary)`` what goes back
to every partition after a pass (by default the fused model),
``local_fit(template, feedback, X, y, info)`` trains a partition's model from it in
the next pass, and ``change(previous, current)`` measures how far two passes'
feedback differ (the loop stops below ``tol``).

Optional hooks (their defaults do nothing): ``prepare(n_partitions)`` checks the
parameters that depend on the number of partitions; ``partition_secrets(n)`` draws
per-fit secrets on the client, one per partition, each handed only to that
partition's fit task (``info["secret"]``); ``summarize_failed(index, secret)`` is
what a partition whose fit failed sends instead of a summary, when the strategy
needs one (secure aggregation: its mask seeds); ``public_report(report)`` strips
what a partition's report row must not reveal; ``privacy_spent(n_releases)`` is
the ``(epsilon, delta)`` spent by ``n_releases`` fused models, or None for a
strategy that makes no privacy claim; ``pass_record(feedback)``, where a strategy has
it, is a dict of its own figures of one pass added to that pass's row of ``history_``
(newton: ``loss``, ``grad_norm``, ``step``). :func:`daskfuse.fuse` also calls
``check_models(models)`` where a strategy has it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from dask.base import tokenize

from .._graph import plain_params
from .._validation import check_real
from ..exceptions import FusionError

__all__ = ["Fuser", "FuserTags", "WrappingFuser", "row_weight"]


def row_weight(info):
    """A partition's size for weighing it: its total sample weight where
    ``fit`` was given ``sample_weight``, else its rows (``info["n_rows"]``)."""
    weights = info.get("sample_weight")
    if weights is None:
        return info["n_rows"]
    return float(np.sum(weights))


def check_holdout(value, name):
    """Raise a ValueError unless ``value`` is a held-out fraction, in (0, 1)."""
    check_real(value, name, low=0, high=1, low_open=True, high_open=True, expected="in (0, 1)")


class Strategy:
    """Identity of a strategy by its parameters: ``repr``, equality, hash and dask token.

    Subclasses list their parameters in :meth:`_params`; two strategies of one class
    with equal parameters are equal and give the same graph keys. ``_token_name``
    names the kind of strategy in the dask token.
    """

    _token_name = "daskfuse.Strategy"

    def _params(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dask_tokenize__() == other.__dask_tokenize__()

    def __hash__(self):
        return hash(self.__dask_tokenize__())

    def __dask_tokenize__(self):
        # the real parameter values (an array or an estimator by its data), not the
        # repr, which NumPy and scikit-learn shorten for large values
        return (self._token_name, type(self).__qualname__, tokenize(plain_params(self._params())))


@dataclass(frozen=True)
class FuserTags:
    """What a strategy answers about one estimator (:meth:`Fuser.tags`).

    Attributes
    ----------
    needs_fit : bool, default=True
        Whether each partition's estimator is fitted before ``summarize``; a
        strategy that summarises the rows themselves (sufficient statistics) says
        False and gets ``None`` for the estimator.
    needs_classes : bool, default=False
        Whether the global class list must be known before the partitions are
        fitted (it is then computed first, and passed as ``info["classes"]``).
    shared_seed : bool, default=False
        Whether every partition's estimator gets the same seed (and so, for models
        with random initial parameters, the same starting point).
    from_models : bool, default=False
        Whether ``summarize`` works from a fitted model alone (``X`` and ``y``
        None), so that :func:`daskfuse.fuse` can fuse models fitted elsewhere.
    single_class_partitions : bool, default=False
        Whether a classifier's partition may hold a single class: true where the
        summaries are statistics aligned by class label (exact fusion); elsewhere a
        partition model must be fitted on at least two classes.
    holdout : float, default=0.0
        Fraction of each partition's rows held out from fitting to score the model.
    rounds_reason : str or None
        Why the fused model cannot go back to the partitions for more rounds
        (``rounds > 1``), or None when it can.
    proximal_reason : str or None
        Why a proximal term cannot be used, or None when it can.
    given_weights_reason : str or None, default=None
        Why :func:`daskfuse.fuse` cannot honour given ``weights``, or None when it
        does (a strategy without a weighted form refuses them rather than ignore
        them).
    sample_weight_reason : str or None
        Why ``fit(X, y, sample_weight=...)`` cannot be honoured, or None when it is
        (each partition's fit gets its rows' weights, ``summarize`` gets them as
        ``info["sample_weight"]``, and the fusion weighs them). The default refuses:
        a strategy says that it honours sample weights, never the reverse.
    weighted_rounds_reason : str or None
        Why ``rounds > 1`` cannot be used with ``sample_weight``, or None when it can
        (the later rounds' local fits and the kept round's training score would be
        unweighted).
    partial_fit_reason : str or None
        Why a fit cannot be continued with new partitions (``partial_fit``), or None
        when it can: the strategy is a monoid over its summary and the root summary
        of a fit, combined with the summaries of new partitions and finalised again,
        is the fusion of all of them.
    grouped_passes : bool, default=False
        Whether a later pass may fit the partitions that one worker thread holds in
        one task, their summaries combined there (``distributed`` only; not with
        per-partition secrets): true where combining costs next to nothing and the
        tree's shape does not change the result (newton's sums), so that a pass over
        many small partitions costs a few tasks, not one per partition. A cascade,
        which fits a model at every inner node, says False.
    """

    needs_fit: bool = True
    needs_classes: bool = False
    shared_seed: bool = False
    from_models: bool = False
    single_class_partitions: bool = False
    holdout: float = 0.0
    rounds_reason: str | None = "it fuses in one pass"
    proximal_reason: str | None = "it has no proximal term"
    given_weights_reason: str | None = None
    sample_weight_reason: str | None = "the strategy does not say that it honours them"
    weighted_rounds_reason: str | None = (
        "the later rounds train and score the partitions without their sample weights"
    )
    partial_fit_reason: str | None = "it keeps no summary that new partitions can join"
    grouped_passes: bool = False


#: members of the earlier protocol whose answers are now fields of :class:`FuserTags`
_ANSWERED_BY_TAGS = frozenset(
    [f.name for f in fields(FuserTags)]
    + ["needs_fit_for", "needs_classes_for", "from_models_for", "shares_seed"]
)


class Fuser(Strategy):
    """Base class of the fusion strategies (the protocol: :mod:`daskfuse.fusion.base`).

    Subclasses set ``name`` and ``requirement`` and implement :meth:`supports`,
    :meth:`summarize`, :meth:`combine` and :meth:`finalize`; :meth:`tags` answers
    the capability questions.
    """

    _token_name = "daskfuse.Fuser"
    #: the string that selects the strategy (``fusion="..."``)
    name = None
    #: what the strategy needs, for the message of :meth:`check_estimator`
    requirement = "not supported"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a strategy written against the old protocol would be silently misread
        old = sorted(set(vars(cls)) & _ANSWERED_BY_TAGS)
        if old:
            raise TypeError(
                f"{cls.__name__} defines {', '.join(old)}, which the Fuser protocol now "
                "answers in tags(estimator) -> FuserTags; override tags() and return "
                "dataclasses.replace(super().tags(estimator), ...) instead"
            )

    def supports(self, estimator):
        """Whether this strategy can fuse models like ``estimator``."""
        raise NotImplementedError

    def tags(self, estimator):
        """The capability answers of this strategy for ``estimator``.

        Parameters
        ----------
        estimator : estimator
            The unfitted template (or a fitted model, for :func:`daskfuse.fuse`).

        Returns
        -------
        FuserTags
        """
        return FuserTags(
            rounds_reason=(
                f"{self!r} fuses in one pass; rounds > 1 need a parameter-averaging "
                "strategy (average, weighted, median, trimmed_mean, krum) or recluster"
            ),
            proximal_reason=f"{self!r} has no proximal term",
            sample_weight_reason=f"{self!r} has no weighted form",
            partial_fit_reason=(
                f"{self!r} cannot combine new partitions into a finished fit (its fused "
                "model is not the finalised merge of summaries that new ones can join); "
                "refit on all rows"
            ),
        )

    def check_estimator(self, estimator, alternatives=()):
        """Raise :class:`~daskfuse.exceptions.FusionError` if ``estimator`` cannot be fused.

        Parameters
        ----------
        estimator : estimator
            The unfitted template estimator.
        alternatives : sequence of str
            Names of the strategies that do apply, for the message.
        """
        reason = self.unsupported_reason(estimator)
        if reason is not None:
            can = ", ".join(map(repr, alternatives)) or "none"
            raise FusionError(
                f"fusion={self!r} cannot fuse {estimator!r}: {reason}. "
                f"Strategies that apply to {type(estimator).__name__}: {can}"
            )

    def unsupported_reason(self, estimator):
        """Why this strategy cannot fuse ``estimator``, or None when it can."""
        return None if self.supports(estimator) else self.requirement

    def prepare(self, n_partitions):
        """Check the parameters that depend on the number of partitions."""
        return self

    # ------------------------------------------------------------ several passes
    def passes(self, rounds):
        """The most passes to run, given the meta-estimator's ``rounds``."""
        return rounds

    def feedback(self, fused, summary):
        """What the next pass sends to every partition (default: the fused model)."""
        return fused

    def first_estimator(self, estimator, X, y):
        """The estimator a partition fits in the first pass (default: ``estimator``).

        ``estimator`` is the partition's own clone of the template (with its seed),
        ``X`` and ``y`` the rows it is about to be fitted on. A strategy may return
        it with parameters set from the rows (see :class:`~daskfuse.fusion.Recluster`).
        """
        return estimator

    def local_fit(self, template, feedback, X, y, info):
        """Fit a partition's model in a later pass, starting from ``feedback``.

        ``info`` holds ``index``, ``seed``, ``classes``, ``local_epochs``,
        ``proximal`` and ``steps``.
        """
        raise NotImplementedError

    def change(self, previous, current):
        """How far two passes' feedback differ (relative; the loop stops below tol)."""
        raise NotImplementedError

    # ------------------------------------------------------------ optional hooks
    def partition_secrets(self, n_partitions):
        """Per-fit secrets, one per partition, or None (the default: none needed).

        Called on the client each time a fit graph is built; entry ``i`` travels
        only with partition ``i``'s fit task, as ``info["secret"]``.
        """
        return None

    def summarize_failed(self, index, secret):
        """The summary a partition whose fit failed contributes, or None (drop it).

        Parameters
        ----------
        index : int
            The failed partition's number.
        secret : object or None
            Its entry of :meth:`partition_secrets`.
        """
        return None

    def public_report(self, report):
        """The partition's report row as it may leave the partition (default: all)."""
        return report

    def privacy_spent(self, n_releases=1):
        """The ``(epsilon, delta)`` spent by ``n_releases`` fused models, or None.

        The default, None, is for strategies that make no privacy claim (the
        meta-estimators then set no ``privacy_spent_``).
        """
        return None

    # ------------------------------------------------------------ the monoid
    def summarize(self, estimator, X, y, info):
        """Summarise one partition, on the worker that holds it.

        Parameters
        ----------
        estimator : estimator or None
            The partition's fitted model (None where the tags say ``needs_fit`` is
            false).
        X : ndarray of shape (n_rows, n_features) or None
            The rows it was fitted on (None when fusing fitted models).
        y : ndarray or None
            Their targets (None for transformers and clusterers).
        info : dict
            The partition's facts (see :mod:`daskfuse.fusion.base`).

        Returns
        -------
        summary : object
            What :meth:`combine` merges; it may carry ``report_weight``.
        """
        raise NotImplementedError

    def combine(self, summaries):
        """Merge any number of summaries into one (associative).

        Parameters
        ----------
        summaries : list
            One or more summaries from :meth:`summarize` or :meth:`combine`.

        Returns
        -------
        summary : object
        """
        raise NotImplementedError

    def finalize(self, summary, template, meta):
        """Turn the root's summary into a plain fitted estimator.

        Parameters
        ----------
        summary : object
            The combination of every fitted partition's summary.
        template : estimator
            The unfitted estimator the fused model is a fitted clone of.
        meta : dict
            Fit-wide facts: ``n_features_in_``, ``feature_names_in_``, ``classes``,
            ``n_partitions``.

        Returns
        -------
        estimator : estimator
        """
        raise NotImplementedError


class WrappingFuser(Fuser):
    """A strategy around an ``inner`` one (``self.inner``) that trains as it does.

    Its tags are the inner strategy's; the passes of several rounds
    (``first_estimator``, ``local_fit``, ``change``) go to ``self.inner``.
    """

    inner = None

    def tags(self, estimator):
        return self.inner.tags(estimator)

    def first_estimator(self, estimator, X, y):
        return self.inner.first_estimator(estimator, X, y)

    def local_fit(self, template, feedback, X, y, info):
        return self.inner.local_fit(template, feedback, X, y, info)

    def change(self, previous, current):
        return self.inner.change(previous, current)
