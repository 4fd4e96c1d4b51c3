"""One resolver for every family of strategies: ``fusion=`` as an instance, ``"auto"`` or
a name."""

from __future__ import annotations

__all__ = ["pick_strategy"]


def pick_strategy(fusion, *, base, names, auto, expected):
    """The strategy that ``fusion`` means.

    Parameters
    ----------
    fusion : object
        What the user passed: an instance of ``base`` (used as is), ``"auto"`` or a
        key of ``names``.
    base : type
        The strategies' base class.
    names : dict of str to type
        The strategies selectable by name (made with their defaults).
    auto : callable
        ``auto()`` is the strategy ``"auto"`` picks.
    expected : str
        What the message says ``fusion`` must be.

    Raises
    ------
    ValueError
        ``fusion`` is none of these: ``"<expected>; got <fusion>"``.

    Examples
    --------
    >>> pick_strategy("b", base=int, names={"b": float}, auto=str, expected="...")
    0.0
    """
    if isinstance(fusion, base):
        return fusion
    if isinstance(fusion, str) and fusion == "auto":
        return auto()
    if isinstance(fusion, str) and fusion in names:
        return names[fusion]()
    raise ValueError(f"{expected}; got {fusion!r}")
