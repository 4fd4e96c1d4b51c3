"""The Fuser protocol.

A fusion strategy is a monoid over a small *summary* object, so that the tree
reduction may group partitions in any way (any ``split_every``) and still give the
same model:

``summarize(fitted_estimator, X, y, info) -> summary``
    on the worker that holds the partition; ``info`` holds ``index`` (partition
    number), ``n_rows`` (rows the model was fitted on), ``holdout_score``,
    ``classes`` (the global class list, where the strategy asked for it),
    ``seed`` (the partition's seed, or None), ``template`` (the unfitted
    estimator, which tells the family when the fitted one is None) and ``secret``
    (this partition's share of :meth:`Fuser.partition_secrets`, or None).

The class flags (``needs_fit``, ``needs_classes``, ``from_models``,
``shared_seed``) are the defaults of the per-estimator hooks ``needs_fit_for``,
``needs_classes_for``, ``from_models_for`` and ``shares_seed``, which a strategy
serving several families overrides.
``combine(summaries) -> summary``
    every inner node of the tree, any fan-in; associative.
``finalize(summary, template, meta) -> estimator``
    the root: a plain fitted scikit-learn estimator.

Several passes (``rounds`` of the meta-estimators, a cascade's feedback passes):
after a pass, ``feedback(fused, summary)`` is what goes back to every partition
(by default the fused model), ``local_fit(template, feedback, X, y, info)`` trains
a partition's model from it in the next pass, and ``change(previous, current)``
measures how far two passes' feedback differ (the loop stops below ``tol``).

Three optional hooks serve the privacy strategies (their defaults do nothing):
``partition_secrets(n)`` draws per-fit secrets on the client, one per partition,
each handed only to that partition's fit task (``info["secret"]``);
``summarize_failed(index, secret)`` is what a partition whose fit failed sends
instead of a summary, when the strategy needs one (secure aggregation: its mask
seeds); ``public_report(report)`` strips what a partition's report row must not
reveal.
"""

from __future__ import annotations

from dask.base import tokenize

from .._graph import plain_params
from ..exceptions import FusionError

__all__ = ["Fuser", "WrappingFuser"]


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


class Fuser(Strategy):
    """Base class of the fusion strategies.

    Subclasses set ``name`` and implement :meth:`summarize`, :meth:`combine` and
    :meth:`finalize`; :meth:`supports` says which estimators they can fuse.
    """

    _token_name = "daskfuse.Fuser"
    #: the string that selects the strategy (``fusion="..."``)
    name = None
    #: fraction of each partition's rows held out from fitting to score the model
    holdout = 0.0
    #: whether each partition's estimator is fitted before ``summarize``; a strategy
    #: that summarises the rows themselves (sufficient statistics) sets it False and
    #: gets ``None`` for the estimator
    needs_fit = True
    #: whether the global class list must be known before the partitions are fitted
    #: (it is then computed first, and passed as ``info["classes"]``)
    needs_classes = False
    #: whether every partition's estimator gets the same seed (and so, for models
    #: with random initial parameters, the same starting point)
    shared_seed = False
    #: whether ``summarize`` works from a fitted model alone (``X`` and ``y`` None),
    #: so that :func:`daskfuse.fuse` can fuse models fitted elsewhere
    from_models = False
    #: whether a classifier's partition may hold a single class: true where the
    #: summaries are statistics aligned by class label (exact fusion); elsewhere a
    #: partition model must be fitted on at least two classes
    single_class_partitions = False

    def supports(self, estimator):
        """Whether this strategy can fuse models like ``estimator``."""
        raise NotImplementedError

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

    requirement = "not supported"

    def shares_seed(self, estimator):
        """Whether every partition's ``estimator`` gets one shared seed."""
        return self.shared_seed

    def needs_fit_for(self, estimator):
        """Whether each partition's ``estimator`` is fitted before ``summarize``."""
        return self.needs_fit

    def needs_classes_for(self, estimator):
        """Whether the global class list must be known before fitting ``estimator``."""
        return self.needs_classes

    def from_models_for(self, estimator):
        """Whether fitted models like ``estimator`` can be fused without their rows."""
        return self.from_models

    def prepare(self, n_partitions):
        """Check the parameters that depend on the number of partitions."""
        return self

    # ------------------------------------------------------------ several passes
    def passes(self, rounds):
        """The most passes to run, given the meta-estimator's ``rounds``."""
        return rounds

    def rounds_reason(self, estimator):
        """Why ``estimator``'s fused model cannot go back for more rounds, or None."""
        return (
            f"{self!r} fuses in one pass; rounds > 1 need a parameter-averaging "
            "strategy (average, weighted, median, trimmed_mean, krum) or recluster"
        )

    def proximal_reason(self, estimator):
        """Why a proximal term cannot be used with ``estimator``, or None."""
        return f"{self!r} has no proximal term"

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

        ``info`` holds ``seed``, ``classes``, ``local_epochs`` and ``proximal``.
        """
        raise NotImplementedError

    def change(self, previous, current):
        """How far two passes' feedback differ (relative; the loop stops below tol)."""
        raise NotImplementedError

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

    def summarize(self, estimator, X, y, info):
        raise NotImplementedError

    def combine(self, summaries):
        raise NotImplementedError

    def finalize(self, summary, template, meta):
        raise NotImplementedError



class WrappingFuser(Fuser):
    """A strategy around an ``inner`` one (``self.inner``) that trains as it does.

    The passes of several rounds are the inner strategy's: ``rounds_reason``,
    ``proximal_reason``, ``local_fit`` and ``change`` go to ``self.inner``.
    """

    inner = None

    def rounds_reason(self, estimator):
        return self.inner.rounds_reason(estimator)

    def proximal_reason(self, estimator):
        return self.inner.proximal_reason(estimator)

    def first_estimator(self, estimator, X, y):
        return self.inner.first_estimator(estimator, X, y)

    def local_fit(self, template, feedback, X, y, info):
        return self.inner.local_fit(template, feedback, X, y, info)

    def change(self, previous, current):
        return self.inner.change(previous, current)
