"""One home for the small parameter checks: whole numbers that are not bools, bounded reals.

Every constructor and ``fit`` parameter check of daskfuse goes through these, so the
messages read alike: ``<name> must be <what>; got <value>``, where ``name`` is how the
user spelled the parameter (``"split_every"``, ``"Krum(f=...)"``).
"""

from __future__ import annotations

import numbers

__all__ = ["check_int", "check_real", "is_int", "is_real"]


def is_int(value):
    """Whether ``value`` is a whole number and not a bool.

    Examples
    --------
    >>> is_int(3), is_int(True), is_int(3.0)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """Whether ``value`` is a real number (ints included) and not a bool.

    Examples
    --------
    >>> is_real(0.5), is_real(2), is_real(False), is_real("1")
    (True, True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds_text(low, high, low_open, high_open):
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f" in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def _in_bounds(value, low, high, low_open, high_open):
    if low is not None and not (value > low if low_open else value >= low):
        return False
    return high is None or (value < high if high_open else value <= high)


def _check(value, name, test, noun, low, high, low_open, high_open, allow_none, expected,
           error):
    if value is None and allow_none:
        return None
    if not test(value) or not _in_bounds(value, low, high, low_open, high_open):
        if expected is None:
            expected = noun + _bounds_text(low, high, low_open, high_open)
            if allow_none:
                expected += " or None"
        raise error(f"{name} must be {expected}; got {value!r}")
    return value


def check_int(value, name, *, low=None, high=None, allow_none=False, expected=None,
              error=ValueError):
    """Return ``int(value)`` if it is a whole number (not a bool) within the bounds.

    Parameters
    ----------
    value : object
        What the user passed.
    name : str
        The parameter as the user spelled it, for the message.
    low, high : int or None, default=None
        Inclusive bounds.
    allow_none : bool, default=False
        Whether None is accepted (and returned).
    expected : str or None, default=None
        What the message says was expected; by default built from the bounds.
    error : type, default=ValueError
        The exception raised.

    Returns
    -------
    value : int or None

    Raises
    ------
    ValueError
        (or ``error``) naming the parameter, what was expected and what was given.

    Examples
    --------
    >>> check_int(4, "n_init", low=1)
    4
    >>> check_int(True, "Krum(f=...)", low=0)
    Traceback (most recent call last):
    ...
    ValueError: Krum(f=...) must be an int >= 0; got True
    """
    out = _check(value, name, is_int, "an int", low, high, False, False, allow_none,
                 expected, error)
    return None if out is None else int(out)


def check_real(value, name, *, low=None, high=None, low_open=False, high_open=False,
               allow_none=False, expected=None, error=ValueError):
    """Return ``float(value)`` if it is a real number (not a bool) within the bounds.

    Parameters
    ----------
    value : object
        What the user passed.
    name : str
        The parameter as the user spelled it, for the message.
    low, high : float or None, default=None
        Bounds.
    low_open, high_open : bool, default=False
        Whether the bound itself is excluded.
    allow_none : bool, default=False
        Whether None is accepted (and returned).
    expected : str or None, default=None
        What the message says was expected; by default built from the bounds.
    error : type, default=ValueError
        The exception raised.

    Returns
    -------
    value : float or None

    Raises
    ------
    ValueError
        (or ``error``) naming the parameter, what was expected and what was given.
        NaN fails any bound.

    Examples
    --------
    >>> check_real(0.25, "DP(delta=...)", low=0, high=1, low_open=True, high_open=True)
    0.25
    >>> check_real(float("nan"), "tol", low=0)
    Traceback (most recent call last):
    ...
    ValueError: tol must be a float >= 0; got nan
    """
    out = _check(value, name, is_real, "a float", low, high, low_open, high_open, allow_none,
                 expected, error)
    return None if out is None else float(out)
