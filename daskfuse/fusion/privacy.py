"""Differential privacy for parameter averaging: :class:`DP`.

Each partition's parameter vector (or, when a previous global model is given as
``info["init"]``, its update from that model) is clipped to an L2 norm bound, the
clipped vectors are averaged, and Gaussian noise calibrated to ``(epsilon, delta)``
is added once, at the root (central differential privacy).

Guarantee
---------
The released model is ``init + sum_i w_i c_i / sum_i w_i + N(0, sigma^2 I)``, with
``c_i`` partition ``i``'s clipped update (``||c_i|| <= clip``) and ``w_i`` its weight.
The number of partitions and the fit's structure are public. Two neighbouring
relations are offered (``DP(neighbouring=...)``):

``"replace"`` (default)
    One partition's rows are replaced by any other rows: its clipped update moves
    from one point of the ball to another, so the average moves by up to
    ``2 * clip * w_i / sum(w)``. With ``max_share`` (below), the replacement may
    have another weight, down to 0: the partition dropped altogether.
``"add-remove"``
    One partition's contribution is added or removed with the weights (and so the
    denominator) fixed: a removed partition counts as a zero update
    ("zero-out", Kairouz et al., 2021), and the average moves by up to
    ``clip * w_i / sum(w)``.

The weights are public by default (uniform, a given array, or the partitions' row
counts for ``"weighted"``), and ``share = max(w) / sum(w)``. When a replacement may
also change the replaced partition's weight (a different row count changes every
share), give ``max_share``, a public bound on any partition's share on both
datasets: with ``m = (1 - a) r + a c`` and ``m' = (1 - b) r + b c'`` (``r`` the
average of the other partitions, ``a``, ``b`` the replaced partition's shares,
``c``, ``c'`` its updates, all of norm ``<= clip``), ``||m - m'|| <= 2 * clip *
max(a, b) <= 2 * clip * max_share``; the fit refuses data on which a share exceeds
it. A partition skipped after a failed fit is a dropped one: only ``max_share``
covers it. The sensitivity is therefore ``k * clip * share`` with ``k = 2`` (replace) or
``1`` (add-remove), and ``sigma = sensitivity / mu`` with ``mu`` from the analytic
Gaussian mechanism (Balle & Wang, 2018), which is exact: a Gaussian mechanism with
sensitivity ``D`` and noise ``sigma`` is ``mu``-Gaussian-DP with ``mu = D / sigma``
(Dong, Roth & Su, 2019), hence ``(epsilon, delta)``-DP per release; ``k`` releases
(rounds of iterative fusion) compose to ``sqrt(k) * mu``-GDP, which
:meth:`DP.privacy_spent` converts back to ``(epsilon, delta)``. ``tests/test_privacy.py``
audits the mechanism empirically on worst-case neighbours (a threshold distinguisher
with Clopper-Pearson bounds).

What it does not protect: the partitions' models before the root (the workers
that run ``combine``/``finalize`` see clipped, un-noised sums; wrap the strategy in
:class:`~daskfuse.fusion.Secure` so that they see only masked sums), and anything
reported outside the model (the partition report drops its per-partition scores,
class counts and iteration counts under this strategy, but keeps row counts and
timings). A fixed ``random_state`` makes the noise reproducible, and so removable
by anyone who knows it: use it for experiments only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, special
from sklearn.base import is_classifier

from .._adapters import adapter_for, linear_estimator_names
from .._validation import check_int, check_real, is_real
from ..exceptions import FusionError
from .average import Average, ParameterSum, Weighted, _aligned
from .base import WrappingFuser

__all__ = ["DP", "NoisySum", "gaussian_epsilon", "gaussian_mu"]

#: report fields computed from a partition's rows, withheld by the privacy strategies
PRIVATE_REPORT_FIELDS = (
    "class_counts",
    "train_score",
    "start_score",
    "holdout_score",
    "n_iter",
)


def _gdp_delta(epsilon, mu):
    """The smallest delta for which a ``mu``-GDP mechanism is ``(epsilon, delta)``-DP."""
    if mu <= 0:
        return 0.0
    a = special.ndtr(-epsilon / mu + mu / 2)
    b = math.exp(epsilon + special.log_ndtr(-epsilon / mu - mu / 2))
    return max(float(a - b), 0.0)


def gaussian_mu(epsilon, delta):
    """The largest ``mu = sensitivity / sigma`` that keeps a Gaussian mechanism
    ``(epsilon, delta)``-DP (the analytic Gaussian mechanism).

    Parameters
    ----------
    epsilon : float
        > 0.
    delta : float
        In (0, 1).

    Returns
    -------
    mu : float
        The noise standard deviation is ``sensitivity / mu``.

    Examples
    --------
    >>> from daskfuse.fusion.privacy import gaussian_epsilon, gaussian_mu
    >>> mu = gaussian_mu(1.0, 1e-5)
    >>> round(mu, 4)
    0.2681
    >>> round(gaussian_epsilon(mu, 1e-5), 6)
    1.0
    """
    hi = 1.0
    while _gdp_delta(epsilon, hi) < delta:
        hi *= 2
    return float(optimize.brentq(lambda mu: _gdp_delta(epsilon, mu) - delta, 0.0, hi, xtol=1e-14))


def gaussian_epsilon(mu, delta):
    """The epsilon at which a ``mu``-GDP mechanism is ``(epsilon, delta)``-DP.

    Parameters
    ----------
    mu : float
        ``sensitivity / sigma`` (for ``k`` composed releases, ``sqrt(k)`` times
        one release's).
    delta : float
        In (0, 1).

    Returns
    -------
    epsilon : float
    """
    if _gdp_delta(0.0, mu) <= delta:
        return 0.0
    hi = 1.0
    while _gdp_delta(hi, mu) > delta:
        hi *= 2
    return float(optimize.brentq(lambda eps: _gdp_delta(eps, mu) - delta, 0.0, hi, xtol=1e-12))


@dataclass
class NoisySum(ParameterSum):
    """The summary of :class:`DP`: weighted sums of clipped updates.

    On top of :class:`~daskfuse.fusion.average.ParameterSum` (whose ``weights`` is
    the scalar sum of the partition weights, and whose rows are laid out on the
    global class list):

    Attributes
    ----------
    weight_max : float
        The largest partition weight summed (the sensitivity is ``clip`` times it).
    init : dict of str to ndarray or None
        The parameters the updates are taken from (None: zero).
    """

    weight_max: float = 0.0
    init: dict | None = None


def _init_params(init, classes):
    """The previous global model's parameters, on the class list ``classes``."""
    if init is None:
        return None
    if isinstance(init, dict):
        return {k: np.asarray(v, dtype=float) for k, v in init.items()}
    adapter = adapter_for(init)
    if adapter is None:
        raise FusionError(
            f"DP: info['init'] must be a fitted model of the estimator's family or None; "
            f"got {type(init).__name__}"
        )
    init_classes, params = adapter.extract(init)
    part = ParameterSum(
        None if classes is None else init_classes,
        params,
        np.ones(0 if init_classes is None else len(init_classes)),
    )
    sums, _ = _aligned(part, classes)
    return {k: np.asarray(v, dtype=float) for k, v in sums.items()}


class PrivateAveraging(WrappingFuser):
    """What the private parameter averagings (:class:`DP`, ``Secure``) share.

    Linear models only: an MLP's fused model is built on one partition's fitted
    network (its private output state), which would leave without noise or mask.
    Every partition's vector has one fixed layout (rows for the global classes),
    the seeds and the checks of the partition count are the inner strategy's, and
    the partition report drops ``_private_fields``.
    """

    _private_fields = PRIVATE_REPORT_FIELDS

    def supports(self, estimator):
        adapter = adapter_for(estimator)
        return adapter is not None and not adapter.needs_carrier

    def tags(self, estimator):
        """The inner strategy's, with the global classes for a classifier."""
        return replace(
            self.inner.tags(estimator),
            needs_classes=bool(is_classifier(estimator)),
            partial_fit_reason=(
                f"{self!r} releases only the protected total of one fit; keeping its root "
                "summary to continue would keep what the protection hides (Secure's "
                "unmasked sums) or release outside privacy_spent_ (DP); refit on all rows"
            ),
        )

    def prepare(self, n_partitions):
        self.inner.prepare(n_partitions)
        return self

    def public_report(self, report):
        report = self.inner.public_report(dict(report))
        report.update(dict.fromkeys(self._private_fields))
        return report


class DP(PrivateAveraging):
    """Differentially private parameter averaging (clipping and Gaussian noise).

    Every partition's parameters (its update from ``info["init"]``, the previous
    global model, when iterative fusion gives one) form one vector, clipped to
    L2 norm ``clip``; the root averages the clipped vectors with the weights of
    ``inner`` and adds Gaussian noise of standard deviation
    ``clip * noise_multiplier * share`` to every parameter, where ``share`` is
    ``max_share`` or else the largest weight over the total, and
    ``noise_multiplier = k / gaussian_mu(epsilon, delta)`` (analytic Gaussian
    mechanism), ``k = 2`` for ``neighbouring="replace"`` and 1 for
    ``"add-remove"``. The fused model is then ``(epsilon, delta)``-DP with respect
    to that neighbouring relation; :meth:`privacy_spent` composes several releases.
    Classifier coefficient rows are laid out on the global class list; a class that
    a partition never saw contributes a zero row there, so prefer
    ``partition="stratified"``.

    See :mod:`daskfuse.fusion.privacy` for the exact guarantee and its limits.

    Parameters
    ----------
    inner : {"average", "weighted"}, Average or Weighted, default="average"
        The averaging: uniform, or weighted by rows (partition sizes are then
        public) or by a given array. ``Weighted(by="score")`` is refused: holdout
        scores are private.
    epsilon : float, default=1.0
        Privacy budget of one release (one fused model), > 0.
    delta : float, default=1e-5
        In (0, 1); well below 1 / (number of partitions).
    clip : float, default=1.0
        L2 bound on each partition's parameter vector (update), > 0. Larger than
        the typical norm wastes noise; smaller biases the average towards ``init``.
    neighbouring : {"replace", "add-remove"}, default="replace"
        What differs between neighbouring datasets: ``"replace"``, one partition's
        rows are replaced by any other rows, which moves the average by up to
        ``2 * clip * share``; ``"add-remove"``, one
        partition's contribution is added or removed with the weights fixed (a
        removed partition counts as a zero update), which moves it by up to
        ``clip * share``: half the noise, for a weaker guarantee.
    max_share : float in (0, 1] or None, default=None
        None: the weights are public and the same on neighbouring datasets
        (uniform, a given array, or the partition row counts), and ``share`` is the
        largest weight over their sum. A float: a public bound on every
        partition's ``weight / sum(weights)`` on both datasets, under which a
        replacement may also change the replaced partition's weight (its row
        count, down to 0: the partition dropped); the noise uses it, and a fit
        whose largest share exceeds it raises
        :class:`~daskfuse.exceptions.FusionError`.
    random_state : int or None, default=None
        None draws the noise from fresh OS entropy at each fit. An int makes it
        reproducible (tests, experiments), and void as privacy against anyone who
        knows the int.

    Attributes
    ----------
    noise_multiplier : float
        Noise standard deviation on the average, in units of ``clip * share``.

    Examples
    --------
    >>> from daskfuse.fusion import DP
    >>> dp = DP(epsilon=2.0, delta=1e-6, clip=5.0)
    >>> dp
    DP(inner=Average(), epsilon=2.0, delta=1e-06, clip=5.0, neighbouring='replace')
    >>> eps, delta = dp.privacy_spent(4)   # four rounds
    >>> bool(eps < 4 * 2.0)
    True
    """

    name = "dp"
    requirement = (
        "differentially private averaging needs a linear model with coef_ and "
        f"intercept_ ({', '.join(linear_estimator_names())})"
    )

    def __init__(
        self,
        inner="average",
        *,
        epsilon=1.0,
        delta=1e-5,
        clip=1.0,
        neighbouring="replace",
        max_share=None,
        random_state=None,
    ):
        self.inner = _averaging(inner, "DP")
        if getattr(self.inner, "by", None) == "score":
            raise ValueError(
                "DP(inner=...) cannot weight by holdout scores (they are computed from "
                "the private rows); use 'average', Weighted(by='rows') or an array of "
                f"public weights; got {self.inner!r}"
            )
        self.epsilon = _positive("DP(epsilon=...)", epsilon)
        self.delta = check_real(
            delta,
            "DP(delta=...)",
            low=0,
            high=1,
            low_open=True,
            high_open=True,
            expected="a number in (0, 1)",
        )
        self.clip = _positive("DP(clip=...)", clip)
        if neighbouring not in _SENSITIVITY:
            raise ValueError(
                f"DP(neighbouring=...) must be 'replace' or 'add-remove'; got {neighbouring!r}"
            )
        self.neighbouring = neighbouring
        self.max_share = check_real(
            max_share,
            "DP(max_share=...)",
            low=0,
            high=1,
            low_open=True,
            allow_none=True,
            expected="None or a number in (0, 1]",
        )
        self.random_state = check_int(
            random_state,
            "DP(random_state=...)",
            low=0,
            allow_none=True,
            expected="None or an int >= 0",
        )
        self._mu = gaussian_mu(self.epsilon, self.delta)
        if not math.isfinite(self.clip * self.noise_multiplier):
            raise ValueError(
                f"DP(clip={self.clip!r}) is too large: the noise standard deviation "
                f"clip * {self.noise_multiplier:.4g} * share overflows a float64 (at "
                f"epsilon={self.epsilon!r}, delta={self.delta!r}); clip the updates to "
                "their typical norm"
            )

    @property
    def noise_multiplier(self):
        return _SENSITIVITY[self.neighbouring] / self._mu

    def _params(self):
        out = {
            "inner": self.inner,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "clip": self.clip,
            "neighbouring": self.neighbouring,
        }
        if self.max_share is not None:
            out["max_share"] = self.max_share
        if self.random_state is not None:
            out["random_state"] = self.random_state
        return out

    def tags(self, estimator):
        """As the inner averaging's; fitted models fuse too (their weights are given)."""
        return replace(super().tags(estimator), from_models=True)

    def privacy_spent(self, n_releases=1):
        """The ``(epsilon, delta)`` spent by ``n_releases`` fused models.

        Parameters
        ----------
        n_releases : int, default=1
            Releases composed (rounds of iterative fusion, refits on the same data).

        Returns
        -------
        epsilon, delta : float
            ``n_releases`` compose as ``sqrt(n_releases) * mu``-GDP, converted at
            this strategy's ``delta``.
        """
        check_int(n_releases, "n_releases", low=0)
        if n_releases == 0:
            return 0.0, 0.0
        if n_releases == 1:
            return self.epsilon, self.delta
        return gaussian_epsilon(math.sqrt(n_releases) * self._mu, self.delta), self.delta

    # ------------------------------------------------------------------ protocol
    def summarize(self, estimator, X, y, info):
        part = self.inner._parameters(estimator, info, scaled=False)
        w = part.report_weight
        classes = None
        if part.classes is not None:
            classes = info.get("classes")
            if classes is None:
                classes = part.classes
        theta, _ = _aligned(part, classes) if classes is not None else (part.sums, None)
        init = _init_params(info.get("init"), classes)
        update = {
            k: np.asarray(v, dtype=float) - (0.0 if init is None else init[k])
            for k, v in theta.items()
        }
        norm = math.sqrt(sum(float(np.sum(v**2)) for v in update.values()))
        factor = 1.0 if norm <= self.clip else self.clip / norm
        # the averaging's exact power-of-two scale: huge weights cannot overflow the
        # sums, nor tiny ones meet Secure's fixed-point resolution; shares unchanged
        scaled = w * self.inner.weight_scale(info)
        return NoisySum(
            classes,
            {k: scaled * factor * v for k, v in update.items()},
            np.asarray(scaled),
            report_weight=w,
            weight_max=scaled,
            init=init,
        )

    def combine(self, summaries):
        total = self.inner.combine(summaries)
        return NoisySum(
            total.classes,
            total.sums,
            total.weights,
            total.n_partitions,
            weight_max=max(s.weight_max for s in summaries),
            init=summaries[0].init,
        )

    def noise_std(self, summary):
        """Standard deviation of the noise :meth:`finalize` adds to each parameter.

        Parameters
        ----------
        summary : NoisySum
            The combined summary of every partition.

        Returns
        -------
        std : float
            ``clip * noise_multiplier * share``.

        Raises
        ------
        FusionError
            A partition's weight share exceeds ``max_share``, or the standard
            deviation is not finite.
        """
        share = summary.weight_max / float(summary.weights)
        if self.max_share is not None:
            if share > self.max_share:
                raise FusionError(
                    f"{self!r}: a partition carries {share:.6g} of the total weight, "
                    f"more than max_share={self.max_share!r}; the noise would not cover "
                    "it (raise max_share or balance the partitions)"
                )
            share = self.max_share
        std = self.clip * self.noise_multiplier * share
        if not math.isfinite(std):
            raise FusionError(f"{self!r}: the noise standard deviation is {std}, not finite")
        return std

    def _rng(self, meta):
        if self.random_state is None:
            return np.random.default_rng()
        # one stream per round, so that rounds never reuse their noise
        return np.random.default_rng(
            np.random.SeedSequence(self.random_state, spawn_key=(int(meta.get("round", 0)),))
        )

    def release(self, summary, rng, n_draws=None):
        """The mechanism: the noisy average that :meth:`finalize` builds the model from.

        Parameters
        ----------
        summary : NoisySum
            The combined summary of every partition.
        rng : numpy.random.Generator
            Source of the noise.
        n_draws : int or None, default=None
            None: one release. An int: that many independent releases, stacked on a
            new first axis of every array (for auditing the mechanism).

        Returns
        -------
        params : dict of str to ndarray
            ``init + sum(w * clipped update) / sum(w) + N(0, noise_std(summary)**2)``.

        Raises
        ------
        FusionError
            Every partition got weight 0, or the noise is not finite.
        """
        total = float(summary.weights)
        if total <= 0:
            raise FusionError(f"{self!r}: every partition got weight 0, nothing to average")
        std = self.noise_std(summary)
        draws = () if n_draws is None else (int(n_draws),)
        params = {}
        for name, value in summary.sums.items():
            base = 0.0 if summary.init is None else summary.init[name]
            noise = rng.normal(0.0, std, size=draws + np.shape(value))
            params[name] = base + value / total + noise
            if not np.all(np.isfinite(params[name])):
                raise FusionError(
                    f"{self!r}: the noisy {name} is not finite (noise standard deviation "
                    f"{std:.4g}); lower clip"
                )
        return params

    def finalize(self, summary, template, meta):
        params = self.release(summary, self._rng(meta))
        return adapter_for(template).build(template, summary.classes, params, meta)


#: the sensitivity of the average, in units of clip * share, per neighbouring relation
_SENSITIVITY = {"replace": 2.0, "add-remove": 1.0}


def _averaging(inner, owner):
    """``inner`` as an Average or Weighted instance."""
    if inner == "newton" or getattr(inner, "name", None) == "newton":
        # (the global-gradient passes release a loss, gradient and Hessian sum per pass)
        raise ValueError(
            f"{owner}(inner='newton') is not supported: {owner} masks or noises one "
            "averaged parameter vector, while newton sends the loss, gradient and Hessian "
            "sums of every pass (and each class's row count) to the root; masking those "
            "sums and accounting for the privacy spent per pass are not implemented"
        )
    if isinstance(inner, str):
        choices = {"average": Average, "weighted": Weighted}
        if inner not in choices:
            raise ValueError(
                f"{owner}(inner=...) must be 'average', 'weighted' or an Average/Weighted "
                f"instance; got {inner!r}"
            )
        return choices[inner]()
    if isinstance(inner, Average | Weighted):
        return inner
    raise ValueError(
        f"{owner}(inner=...) must be 'average', 'weighted' or an Average/Weighted "
        f"instance; got {inner!r}"
    )


def _positive(what, value):
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number > 0; got {value!r}")
    return float(value)
