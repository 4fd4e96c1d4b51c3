"""Exceptions raised by daskfuse."""

from __future__ import annotations

__all__ = ["FusionError", "PartitionError"]


class PartitionError(ValueError):
    """A partition could not be fitted or summarised.

    The message starts with ``partition <index>`` so that the failing partition is
    named whatever scheduler re-raised the error.

    Parameters
    ----------
    index : int
        Index of the partition.
    message : str
        What went wrong.
    """

    def __init__(self, index, message):
        super().__init__(f"partition {index}: {message}")
        self.index = index
        self.detail = message

    def __reduce__(self):
        # Keep both fields when the error travels from a worker to the client.
        return (type(self), (self.index, self.detail))


class FusionError(ValueError):
    """The partial models cannot be fused as asked."""
