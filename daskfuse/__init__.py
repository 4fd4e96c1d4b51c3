"""daskfuse: fit one scikit-learn model per data partition on dask, fuse them into one.

Public names: :class:`FusedClassifier`, :class:`FusedRegressor`,
:class:`FusedTransformer`, :class:`FusedClusterer`, and the submodules
:mod:`daskfuse.partition` (data distribution), :mod:`daskfuse.fusion` (model
fusion) and :mod:`daskfuse.vertical` (column blocks: global-gradient passes,
backfitting and stacking).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import fusion, models, partition, persist, vertical
from ._fuse import fuse
from .estimators import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer
from .exceptions import FusionError, PartitionError
from .persist import load, save
from .plot import plot_fusion

try:
    __version__ = version("daskfuse")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "FusedClassifier",
    "FusedClusterer",
    "FusedRegressor",
    "FusedTransformer",
    "FusionError",
    "PartitionError",
    "__version__",
    "fuse",
    "fusion",
    "load",
    "models",
    "partition",
    "persist",
    "plot_fusion",
    "save",
    "vertical",
]
