"""Exact fusion of ColumnTransformer and FeatureUnion (families of :class:`Exact`)."""

from __future__ import annotations

__all__ = ["composite_families"]


def composite_families(family_of, reason_of):
    """The composite families, which look up their parts' families with ``family_of``."""
    return ()
