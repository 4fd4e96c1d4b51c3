"""The Fuser protocol.

A fusion strategy is a monoid over a small *summary* object, so that the tree
reduction may group partitions in any way (any ``split_every``) and still give the
same model:

``summarize(fitted_estimator, X, y, info) -> summary``
    on the worker that holds the partition; ``info`` holds ``index`` (partition
    number), ``n_rows`` (rows the model was fitted on), ``holdout_score``,
    ``classes`` (the global class list, where the strategy asked for it),
    ``seed`` (the partition's seed, or None) and ``template`` (the unfitted
    estimator, which tells the family when the fitted one is None).

The class flags (``needs_fit``, ``needs_classes``, ``from_models``,
``shared_seed``) are the defaults of the per-estimator hooks ``needs_fit_for``,
``needs_classes_for``, ``from_models_for`` and ``shares_seed``, which a strategy
serving several families overrides.
``combine(summaries) -> summary``
    every inner node of the tree, any fan-in; associative.
``finalize(summary, template, meta) -> estimator``
    the root: a plain fitted scikit-learn estimator.
"""

from __future__ import annotations

from ..exceptions import FusionError

__all__ = ["Fuser"]


class Fuser:
    """Base class of the fusion strategies.

    Subclasses set ``name`` and implement :meth:`summarize`, :meth:`combine` and
    :meth:`finalize`; :meth:`supports` says which estimators they can fuse.
    """

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

    def summarize(self, estimator, X, y, info):
        raise NotImplementedError

    def combine(self, summaries):
        raise NotImplementedError

    def finalize(self, summary, template, meta):
        raise NotImplementedError

    def _params(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self):
        return hash(repr(self))

    def __dask_tokenize__(self):
        return ("daskfuse.Fuser", repr(self))
