"""Fusion strategies: how partial models become one model.

Every strategy implements the :class:`Fuser` protocol (summarize, combine,
finalize) and can be selected by object or by name (``fusion="weighted"``).
"""

from __future__ import annotations

from ..exceptions import FusionError
from .average import Average, Weighted
from .base import Fuser

__all__ = ["Average", "Fuser", "Weighted", "available_fusions", "resolve_fusion"]

#: strategies selectable by name
FUSERS = {"average": Average, "weighted": Weighted}


def available_fusions(estimator):
    """Names of the strategies that can fuse models like ``estimator``."""
    return [name for name, cls in FUSERS.items() if cls().supports(estimator)]


def resolve_fusion(fusion, estimator):
    """The :class:`Fuser` that ``fusion`` names for ``estimator``.

    Parameters
    ----------
    fusion : str or Fuser
        ``"auto"``, a strategy name or a :class:`Fuser` instance.
    estimator : estimator
        The unfitted template; the strategy must apply to it.

    Raises
    ------
    ValueError
        ``fusion`` is neither a known name nor a :class:`Fuser`.
    FusionError
        The strategy cannot fuse this kind of estimator.
    """
    alternatives = available_fusions(estimator)
    if isinstance(fusion, Fuser):
        fuser = fusion
    elif isinstance(fusion, str) and fusion == "auto":
        if not alternatives:
            raise FusionError(
                f"fusion='auto' found no strategy for {type(estimator).__name__}; "
                f"strategies: {', '.join(FUSERS)}. {Average().requirement}"
            )
        fuser = FUSERS["weighted"]() if "weighted" in alternatives else FUSERS[alternatives[0]]()
    elif isinstance(fusion, str) and fusion in FUSERS:
        fuser = FUSERS[fusion]()
    else:
        raise ValueError(
            f"fusion must be 'auto', one of {', '.join(map(repr, FUSERS))} or a "
            f"daskfuse.fusion.Fuser instance; got {fusion!r}"
        )
    fuser.check_estimator(estimator, alternatives)
    return fuser
