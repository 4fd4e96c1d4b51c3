"""The record that tells :class:`~daskfuse.fusion.exact.Exact` how to fuse one family."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Family", "no_constraint"]


def no_constraint(estimator):
    """A family's ``check`` that accepts every parameter value."""
    return None


@dataclass(frozen=True)
class Family:
    """How one family of estimators is summarised, and solved at the root."""

    types: tuple
    summarize: Callable
    finalize: Callable
    check: Callable = no_constraint
    #: summarised from the partition's rows (True) or from its fitted model (False)
    from_rows: bool = True
    #: whether ``summarize`` takes :class:`Exact`'s ``method`` (least squares)
    takes_method: bool = False
    #: whether fitted models alone can be summarised (:func:`daskfuse.fuse`); None:
    #: exactly the families summarised from fitted models
    from_models: bool | None = None
