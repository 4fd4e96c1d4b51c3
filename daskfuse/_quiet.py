"""``quiet_warnings``: silence warnings inside task functions, safely across threads.

``warnings.catch_warnings`` saves and restores the process-wide filter list, so two
threads that overlap (fit tasks under the threads scheduler, or a distributed worker
with several threads) restore each other's state: one of them leaves its ``ignore``
filter installed for good, and warnings meant for the user (daskfuse's own included)
disappear. Here the first thread in saves the filters and the last one out restores
them.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

__all__ = ["quiet_warnings"]

_lock = threading.Lock()
_active = 0
_saved = None


@contextlib.contextmanager
def quiet_warnings(category=Warning):
    """Ignore warnings of ``category`` while the block runs (thread-safe)."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = list(warnings.filters)
        _active += 1
        warnings.filterwarnings("ignore", category=category)
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                warnings.filters[:] = _saved
                _saved = None
                mutated = getattr(warnings, "_filters_mutated", None)
                if mutated is not None:
                    mutated()
