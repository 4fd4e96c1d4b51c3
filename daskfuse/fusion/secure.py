"""Secure aggregation for parameter averaging: :class:`Secure`.

Each partition's summary (its weighted parameter sums and its weights) is encoded in
fixed point and masked with pairwise additive masks that cancel in the sum over all
partitions, so the ``combine`` tasks only ever add masked vectors and the root
recovers the exact sum, never one partition's parameters.

Protocol
--------
* On the client, each time a fit graph is built, a fresh 256-bit master secret
  derives one seed ``s_ij`` per pair of partitions (BLAKE2b keyed by the master).
  Partition ``i``'s fit task receives only its own ``n - 1`` seeds; the master
  never leaves the client.
* The weights are first multiplied by a power of two agreed before masking, which
  brings the largest weight into ``[0.5, 1)`` where the weights are public in
  advance (an array of weights, or the weights given to :func:`~daskfuse.fuse`;
  else 1, as row counts in a fit are >= 1 and scores <= 1). The weighted average
  is unchanged (exactly), and tiny weights lose nothing to the fixed-point
  resolution.
* Every value ``x`` is encoded as the integer ``round(x * 2**60)``, split into three
  40-bit limbs held in 64-bit words (``|x| < 2**59``, resolution ``2**-60``, so
  sums of up to ``2**22`` partitions never overflow). Partition ``i`` adds
  ``sum_{j>i} PRG(s_ij) - sum_{j<i} PRG(s_ij)`` modulo ``2**64`` to its words,
  with SHAKE-256 as the PRG: each masked word is uniformly distributed, whatever
  the value. Integer addition is exact and associative, so the unmasked total is
  the exact sum of the encoded values, whatever the tree (``split_every``).
* A partition whose fit fails contributes no masked summary; instead its task
  sends its own seeds (:meth:`Secure.summarize_failed`), and the root subtracts
  the masks that pair each surviving partition with a failed one. Those masks hide
  no one's parameters (the failed partition's are not in the sum), and the masks
  between survivors stay. A partition that sends neither is an error.

Threat model
------------
Honest-but-curious parties that follow the protocol and look at what they are
given, without colluding:

* the **scheduler** holds the graph, and with it every partition's seeds, but
  never task results: workers exchange results directly, and only the fused model
  is gathered through it. It learns nothing about a partition's parameters.
* a **worker** holds the rows, seeds and unmasked parameters of the partitions
  whose fit tasks it runs, and the masked summaries its ``combine`` tasks receive.
  The masks of a partition it did not fit include seeds it never saw, so it learns
  no other partition's parameters, only the sum of all the partitions that are not
  its own (which the fused model with its own partitions reveals anyway). The
  ``finalize`` task holds only the total.
* the **client** holds the master secret but receives only the fused model and the
  partition report (which withholds per-partition scores, class counts, weights
  and iteration counts under this strategy); under newton, also each pass's totals
  (loss, gradient, the fused model's training accuracy in ``history_``).

Global-gradient passes
----------------------
``Secure(inner="newton")`` masks every pass of :class:`~daskfuse.fusion.Newton` the
same way: the one-shot start (each partition's row-weighted local parameters, its
class counts and local quadratic model) and, in every later pass, the sums of the
loss at each candidate step, the gradient and the Hessian, the weight and the rows
classified right. Only the pass's point and direction (the same for every partition,
and public: they come from the previous pass's totals) travel in clear. A fresh
master secret, hence fresh pair seeds and masks, is drawn for every pass's graph, so
no mask is used twice. What may be missing from one partition (the local start of a
partition that holds a single class) is masked as zeros with a masked flag beside
it, and a value out of the fixed-point range (the loss at a candidate step too long
for a log link) as 0 with a masked flag that the root reads as an infinite loss,
which the line search rejects: the root learns how many partitions flagged, never
which. The fused model is newton's to the fixed-point resolution.

Limits: a scheduler colluding with a worker can unmask everything (the seeds come
from the client through the graph; a key agreement between partitions, as in
Bonawitz et al. 2017, would remove the scheduler from the trusted parties and is not
implemented); in-memory inputs travel in the graph, so the scheduler sees their
rows (load the data on the workers as dask collections); with one surviving
partition the fused model is that partition's; the graph carries ``n * (n - 1)``
seeds (32 bytes each), and each fit task computes ``n - 1`` mask streams.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets
from dataclasses import dataclass, field, replace
from functools import reduce

import numpy as np

from .._adapters import linear_estimator_names
from ..exceptions import FusionError
from .average import ParameterSum, _aligned
from .newton import Newton, private_optional_fields
from .privacy import DP, PRIVATE_REPORT_FIELDS, PrivateAveraging, _averaging

__all__ = ["MaskedSum", "PairSeeds", "Secure"]

#: fixed point: values are integers in units of 2**-FRACTION_BITS, in LIMBS limbs of
#: LIMB_BITS bits each, one 64-bit word per limb
FRACTION_BITS = 60
LIMB_BITS = 40
LIMBS = 3
#: encoded values must stay below this magnitude
MAX_ABS = 2.0 ** (LIMB_BITS * LIMBS - FRACTION_BITS - 1)
_DOMAIN = b"daskfuse-secure-mask-v1"


class PairSeeds:
    """One partition's pairwise mask seeds (its entry of ``Secure.partition_secrets``).

    Attributes
    ----------
    index : int
        The partition.
    seeds : tuple of bytes or None
        ``seeds[j]`` is the seed shared with partition ``j`` (None at ``index``).
    """

    __slots__ = ("index", "seeds")

    def __init__(self, index, seeds):
        self.index = index
        self.seeds = seeds

    def __reduce__(self):
        return (PairSeeds, (self.index, self.seeds))

    def __repr__(self):
        # never print the seeds (task reprs end up in logs and on the dashboard)
        return f"PairSeeds(partition={self.index}, peers={len(self.seeds) - 1})"


@dataclass
class MaskedSum:
    """The summary of :class:`Secure`.

    Attributes
    ----------
    words : ndarray of uint64 or None
        The masked fixed-point encoding of the inner summary's sums and weights,
        summed modulo 2**64 over ``included``; None when no partition is included.
    layout : tuple of (str, tuple)
        Name and shape of each encoded array, in order (``"weights"`` last).
    shell : ParameterSum, dict or None
        The inner summary with its sums and weights zeroed: classes and the inner
        strategy's public fields (combined by the inner strategy); for newton, the
        summary's public fields (the pass's point and direction).
    included : tuple of int
        Partitions whose masked summaries are in ``words``.
    released : dict of int to PairSeeds
        Failed partitions and their seeds, for removing their masks at the root.
    opened : dict or None
        Only at the root of newton's passes, after ``finalize``: the unmasked total
        (the feedback reads the Newton step from it).
    """

    words: np.ndarray | None
    layout: tuple | None
    shell: ParameterSum | dict | None
    included: tuple = ()
    released: dict = field(default_factory=dict)
    opened: dict | None = None


def _prg(seed, n_words):
    """``n_words`` uniform 64-bit words from ``seed`` (SHAKE-256)."""
    stream = hashlib.shake_256(_DOMAIN + seed).digest(8 * n_words)
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


def _mask(pair_seeds, n_words):
    """Partition ``i``'s mask: ``sum_{j>i} PRG(s_ij) - sum_{j<i} PRG(s_ij)`` mod 2**64."""
    mask = np.zeros(n_words, dtype=np.uint64)
    for j, seed in enumerate(pair_seeds.seeds):
        if seed is None:
            continue
        if j > pair_seeds.index:
            mask += _prg(seed, n_words)
        else:
            mask -= _prg(seed, n_words)
    return mask


def encode(values):
    """Fixed-point limbs of a float array: int64 of shape ``(values.size, LIMBS)``.

    The value is ``sum_k limb_k * 2**(LIMB_BITS * k - FRACTION_BITS)``; the split is
    exact down to ``2**-FRACTION_BITS`` (every step is a power-of-two scaling or the
    fractional part of a non-negative float).
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    magnitude = np.abs(x)
    top = LIMB_BITS * (LIMBS - 1) - FRACTION_BITS
    y = np.ldexp(magnitude, -top)
    limbs = []
    for _ in range(LIMBS - 1):
        whole = np.floor(y)
        limbs.append(whole)
        y = np.ldexp(y - whole, LIMB_BITS)
    limbs.append(np.rint(y))
    out = np.stack(limbs[::-1], axis=1).astype(np.int64)
    out[x < 0] *= -1
    return out


def decode(limbs):
    """Floats from (summed) fixed-point limbs, the inverse of :func:`encode`."""
    s = np.array(limbs, dtype=np.int64).reshape(-1, LIMBS)

    def normalise(s):
        # carry so that every limb but the top one lies in [0, 2**LIMB_BITS)
        for k in range(LIMBS - 1):
            carry = s[:, k] >> LIMB_BITS
            s[:, k] -= carry << LIMB_BITS
            s[:, k + 1] += carry
        return s

    s = normalise(s)
    negative = s[:, -1] < 0
    s[negative] *= -1
    s = normalise(s)
    # a sum of non-negative terms, largest first: no cancellation
    out = np.zeros(len(s))
    for k in range(LIMBS - 1, -1, -1):
        out += np.ldexp(s[:, k].astype(float), LIMB_BITS * k - FRACTION_BITS)
    return np.where(negative, -out, out)


class Secure(PrivateAveraging):
    """Secure aggregation around a parameter-averaging strategy.

    Every partition's summary of ``inner`` is masked with pairwise additive masks
    that cancel in the sum over all partitions: ``combine`` tasks only add masked
    vectors, and the root unmasks the exact total. The fused model equals the one
    ``inner`` gives without masking (to the fixed-point resolution, ``2**-60``).
    A partition whose fit fails sends its mask seeds instead of a summary
    (:meth:`summarize_failed`), and the root removes the masks it shared with the
    others. See :mod:`daskfuse.fusion.secure` for the protocol, the threat model and
    its limits.

    Parameters
    ----------
    inner : {"weighted", "average", "newton"}, Average, Weighted, DP or Newton, \
            default="weighted"
        The averaging that is computed under the masks. With a
        :class:`~daskfuse.fusion.DP`, the workers see only masked clipped updates
        and the root adds the noise. With ``"newton"`` (a
        :class:`~daskfuse.fusion.Newton`), every global-gradient pass's sums are
        masked (fresh masks each pass) and it fits what newton fits.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from daskfuse import FusedRegressor
    >>> from daskfuse.fusion import Secure
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = X @ [1.0, 2.0, 3.0]
    >>> plain = FusedRegressor(Ridge(), n_partitions=4, fusion="weighted").fit(X, y)
    >>> masked = FusedRegressor(Ridge(), n_partitions=4, fusion=Secure()).fit(X, y)
    >>> bool(np.allclose(masked.fused_estimator_.coef_, plain.fused_estimator_.coef_,
    ...                  rtol=1e-12, atol=0))
    True
    """

    name = "secure"
    # a partition's weight (rows or score) is one of the masked values
    _private_fields = PRIVATE_REPORT_FIELDS + ("weight",)
    requirement = (
        "secure aggregation needs a linear model with coef_ and intercept_ "
        f"({', '.join(linear_estimator_names())})"
    )

    def __init__(self, inner="weighted"):
        if isinstance(inner, str) and inner == "newton":
            inner = Newton()
        if isinstance(inner, DP | Newton):
            self.inner = inner
        else:
            self.inner = _averaging(inner, "Secure")

    def supports(self, estimator):
        if isinstance(self.inner, Newton):
            return self.inner.supports(estimator)
        return super().supports(estimator)

    def unsupported_reason(self, estimator):
        if isinstance(self.inner, Newton):
            return self.inner.unsupported_reason(estimator)
        return super().unsupported_reason(estimator)

    def _params(self):
        return {"inner": self.inner}

    def privacy_spent(self, n_releases=1):
        """The inner :class:`~daskfuse.fusion.DP`'s ``privacy_spent`` (None otherwise)."""
        return self.inner.privacy_spent(n_releases)

    def partition_secrets(self, n_partitions):
        """Fresh pairwise seeds: entry ``i`` holds partition ``i``'s ``n - 1`` seeds."""
        master = _secrets.token_bytes(32)
        pair = {}
        for i in range(n_partitions):
            for j in range(i + 1, n_partitions):
                pair[i, j] = hashlib.blake2b(
                    f"{i},{j}".encode(), key=master, digest_size=32
                ).digest()
        return [
            PairSeeds(
                i,
                tuple(None if i == j else pair[min(i, j), max(i, j)] for j in range(n_partitions)),
            )
            for i in range(n_partitions)
        ]

    def _check_secret(self, index, secret):
        if not isinstance(secret, PairSeeds) or secret.index != index:
            raise FusionError(
                f"{self!r}: partition {index} got no mask seeds (info['secret'] is "
                f"{type(secret).__name__}); the fit graph must pass each partition its "
                "entry of Secure.partition_secrets(n_partitions)"
            )

    # ------------------------------------------------------------------ protocol
    def summarize(self, estimator, X, y, info):
        index = info["index"]
        secret = info.get("secret")
        self._check_secret(index, secret)
        if isinstance(self.inner, Newton):
            return self._summarize_newton(estimator, X, y, info)
        # the averaging has scaled its weights by a public power of two already, so
        # neither tiny nor huge weights meet the fixed-point resolution or range
        inner = self.inner.summarize(estimator, X, y, info)
        classes = inner.classes
        if classes is not None and info.get("classes") is not None:
            classes = np.asarray(info["classes"])
        sums, weights = (
            _aligned(inner, classes) if classes is not None else (inner.sums, inner.weights)
        )
        arrays = [(k, np.asarray(v, dtype=float)) for k, v in sorted(sums.items())]
        arrays.append(("weights", np.asarray(weights, dtype=float)))
        shell = replace(
            inner,
            classes=classes,
            sums={k: np.zeros_like(v) for k, v in arrays[:-1]},
            weights=np.zeros_like(arrays[-1][1]),
            # the weight is masked too: the shell leaves the partition in clear
            report_weight=None,
        )
        return self._masked(index, secret, arrays, shell)

    def _summarize_newton(self, estimator, X, y, info):
        """Newton's summary of one pass, its sums masked (see :func:`_newton_arrays`)."""
        summary = self.inner.summarize(estimator, X, y, info)
        optional = {}
        if summary["first"]:
            optional = private_optional_fields(info["template"], info["classes"], X.shape[1])
        arrays, shell = _newton_arrays(summary, optional)
        return self._masked(info["index"], info["secret"], arrays, shell)

    def _masked(self, index, secret, arrays, shell):
        """The :class:`MaskedSum` of the named float ``arrays`` of partition ``index``."""
        flat = np.concatenate([v.reshape(-1) for _, v in arrays])
        if not np.all(np.isfinite(flat)) or np.any(np.abs(flat) >= MAX_ABS):
            raise FusionError(
                f"{self!r}: partition {index}'s parameters are not finite or exceed the "
                f"fixed-point range (|value| < 2**{int(np.log2(MAX_ABS))})"
            )
        limbs = encode(flat).reshape(-1).view(np.uint64)
        words = limbs + _mask(secret, limbs.size)
        return MaskedSum(words, tuple((k, v.shape) for k, v in arrays), shell, (index,), {})

    def summarize_failed(self, index, secret):
        """What a failed partition sends: its seeds, so the root can remove its masks.

        Parameters
        ----------
        index : int
            The failed partition.
        secret : PairSeeds
            Its entry of :meth:`partition_secrets`.
        """
        self._check_secret(index, secret)
        return MaskedSum(None, None, None, (), {index: secret})

    def combine(self, summaries):
        included = [i for s in summaries for i in s.included]
        released = {}
        for s in summaries:
            released.update(s.released)
        repeated = sorted({i for i in included if included.count(i) > 1})
        both = sorted(set(included) & set(released))
        if repeated or both:
            raise FusionError(
                f"{self!r}: partition(s) {repeated or both} arrived twice (as a masked "
                "summary and as released seeds, or twice); refusing to combine, which "
                "could unmask them"
            )
        live = [s for s in summaries if s.words is not None]
        if not live:
            return MaskedSum(None, None, None, (), released)
        layout = live[0].layout
        for s in live[1:]:
            if s.layout != layout:
                raise FusionError(
                    f"{self!r}: the partitions' masked summaries have different layouts "
                    f"({layout} and {s.layout}) and cannot be added"
                )
        words = reduce(np.add, [s.words for s in live])
        shell = self.inner.combine([s.shell for s in live])
        return MaskedSum(words, layout, shell, tuple(sorted(included)), released)

    def finalize(self, summary, template, meta):
        n = meta.get("n_partitions")
        covered = set(summary.included) | set(summary.released)
        expected = set(range(n)) if n is not None else covered
        missing = sorted(expected - covered)
        if missing:
            raise FusionError(
                f"{self!r}: partition(s) {missing} sent neither a masked summary nor "
                "their mask seeds, so the masks they share with the others cannot be "
                "removed (a failed partition's task must send "
                "Secure.summarize_failed(index, secret))"
            )
        if summary.words is None:
            raise FusionError(f"{self!r}: every partition failed, nothing to average")
        arrays = _unmasked(summary)
        if isinstance(self.inner, Newton):
            total = _newton_total(summary.shell, arrays, len(summary.included))
            model = self.inner.finalize(total, template, meta)
            # the root's Newton step (newton's feedback reads it from its summary)
            summary.opened = total
            return model
        weights = arrays.pop("weights")
        total = replace(summary.shell, sums=arrays, weights=weights)
        return self.inner.finalize(total, template, meta)

    # ------------------------------------------------------------ several passes
    def passes(self, rounds):
        """The inner strategy's (newton runs until its own ``tol``)."""
        return self.inner.passes(rounds)

    def feedback(self, fused, summary):
        """The inner strategy's feedback (newton: the next Newton step's point)."""
        opened = summary.opened
        return self.inner.feedback(fused, summary if opened is None else opened)

    def pass_record(self, feedback):
        """The inner strategy's figures of one pass (newton's loss, gradient, step)."""
        record = getattr(self.inner, "pass_record", None)
        return {} if record is None else record(feedback)


def _unmasked(summary):
    """The root's ``MaskedSum``: its masks removed, its sums decoded, by name."""
    words = summary.words.copy()
    for m, seeds in summary.released.items():
        for i in summary.included:
            stream = _prg(seeds.seeds[i], words.size)
            # partition i added +PRG(s_im) when m > i, -PRG(s_im) when m < i
            if m > i:
                words -= stream
            else:
                words += stream
    values = decode(words.view(np.int64))
    arrays, start = {}, 0
    for name, shape in summary.layout:
        size = int(np.prod(shape, dtype=int))
        arrays[name] = values[start : start + size].reshape(shape)
        start += size
    return arrays


#: newton's summary fields that are the same for every partition (sent in clear)
_NEWTON_PUBLIC = ("first", "n_features", "state")
#: the flags that say how many partitions gave an optional field, or overflowed
_GIVEN, _OVER = "given:", "over:"


def _newton_arrays(summary, optional):
    """``(arrays, shell)``: newton's sums as named float arrays to mask, and the public
    fields in clear.

    A field in ``optional`` (pass 0's local parameters and quadratic model, None where
    the partition cannot fit alone) is masked as zeros in that case, with a masked
    flag (1 where given) beside it: only the number of partitions that gave it reaches
    the root. A value that is not finite or out of the fixed-point range (at a
    candidate step too long for a log link) is masked as 0 with a flag (per candidate
    for the losses, per field otherwise), and the root sees it as infinite, which
    newton's line search rejects; in an optional field it counts as not given.
    """
    arrays, shell = [], {}
    for key, value in sorted(summary.items()):
        if key in _NEWTON_PUBLIC or (value is None and key not in optional):
            shell[key] = value  # the same for every partition (a regressor's None)
            continue
        value = None if value is None else np.asarray(value, dtype=float)
        bad = None if value is None else ~(np.abs(value) < MAX_ABS)  # NaN is bad too
        if key in optional:
            given = value is not None and not bad.any()
            arrays.append((_GIVEN + key, np.array(float(given))))
            arrays.append((key, value if given else np.zeros(optional[key])))
            continue
        flags = bad if key == "losses" else np.array(bad.any())
        arrays.append((_OVER + key, flags.astype(float)))
        arrays.append((key, np.where(bad, 0.0, value)))
    return arrays, shell


def _newton_total(shell, arrays, n_included):
    """Newton's combined summary from the unmasked ``arrays`` (see :func:`_newton_arrays`)."""
    total = dict(shell)
    for key, value in arrays.items():
        if key.startswith(_GIVEN) or key.startswith(_OVER):
            continue
        given, over = arrays.get(_GIVEN + key), arrays.get(_OVER + key)
        if given is not None and round(float(given)) < n_included:
            value = None  # a partition could not fit alone: as newton's combine
        elif over is not None:
            value = np.where(over > 0.5, np.inf, value)
        total[key] = value.item() if value is not None and value.ndim == 0 else value
    return total
