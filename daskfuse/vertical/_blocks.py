"""The block tasks every column fit shares, and stacking's (``fit``, ``finalize``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

from .._adapters import stamp_inputs
from .._graph import _worker_name
from .._inputs import aligned, float_array
from .._quiet import quiet_warnings
from ..exceptions import PartitionError
from ..models import (
    ColumnStackingClassifier,
    ColumnStackingRegressor,
    resolve_stack_method,
    stack_features,
)


@dataclass(frozen=True)
class VerticalSpec:
    """What every block task needs besides its columns (small; travels with each task)."""

    estimator: Any
    fusion: Any
    classifier: bool
    classes: Any = None
    seeds: tuple | None = None
    allow_nan: bool = False
    groups: tuple = ()


def block_matrix(spec, index, pieces, n_rows):
    """Block ``index``'s columns as one float64 array, checked (on its worker)."""
    try:
        parts = [float_array(p) for p in pieces]
    except (TypeError, ValueError) as exc:
        raise PartitionError(
            index, f"the block's columns could not be converted to numbers ({exc})"
        ) from exc
    X = aligned(parts[0]) if len(parts) == 1 else np.concatenate(parts, axis=0)
    cols = spec.groups[index].tolist() if spec.groups else None
    if X.ndim != 2:
        raise PartitionError(index, f"the block's X must be 2-dimensional, got {X.ndim}")
    if X.shape[0] != n_rows:
        raise PartitionError(
            index,
            f"the block (columns {cols}) has {X.shape[0]} rows but y has {n_rows}: X and y "
            "are not aligned",
        )
    if not spec.allow_nan and not np.isfinite(X).all():
        raise PartitionError(index, f"X contains NaN or infinity in columns {cols}")
    return X


def check_target(y):
    y = np.asarray(y)
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    if y.dtype.kind == "O" and pd.isna(y).any():
        raise ValueError("y contains missing values")
    return y


def _fit_quietly(estimator, X, y):
    with quiet_warnings(UserWarning):
        return estimator.fit(X, y)


def _block_estimator(spec, index):
    estimator = clone(spec.estimator)
    if spec.seeds is not None and "random_state" in estimator.get_params():
        estimator.set_params(random_state=spec.seeds[index])
    return estimator


def fit_stack_block(spec, index, y, *pieces):
    """Fit block ``index``'s model and its out-of-fold outputs (a ``daskfuse-fit`` task).

    Runs where the block's columns are; the fitted model, the out-of-fold
    meta-features (n rows) and a report row leave it.
    """
    start = time.perf_counter()
    y = check_target(y)
    X = block_matrix(spec, index, pieces, len(y))
    estimator = _block_estimator(spec, index)
    method = resolve_stack_method(estimator, spec.fusion.stack_method, spec.classifier)
    fit_start = time.perf_counter()
    try:
        model = _fit_quietly(clone(estimator), X, y)
        with quiet_warnings(UserWarning):
            raw = cross_val_predict(estimator, X, y, cv=spec.fusion.cv, method=method)
    except Exception as exc:
        raise PartitionError(
            index,
            f"{type(estimator).__name__} on columns {spec.groups[index].tolist()} "
            f"failed: {type(exc).__name__}: {exc}",
        ) from exc
    fit_seconds = time.perf_counter() - fit_start
    features = stack_features(np.asarray(raw), method, spec.classes, spec.classes)
    report = {
        "partition": index,
        "columns": spec.groups[index].tolist(),
        "rows": len(y),
        "train_score": float(model.score(X, y)),
        "n_iter": None,
        "fit_seconds": fit_seconds,
        "task_seconds": time.perf_counter() - start,
        "worker": _worker_name(),
    }
    return model, features, report


def finalize_stack(spec, meta, y, *results):
    """Fit the meta-learner on the blocks' out-of-fold outputs (``daskfuse-finalize``)."""
    fusion = spec.fusion
    models = [r[0] for r in results]
    blocks = [g.tolist() for g in spec.groups]
    if spec.classifier:
        fused = ColumnStackingClassifier(
            models,
            blocks,
            fusion.final_estimator,
            stack_method=fusion.stack_method,
            classes=spec.classes,
        )
    else:
        fused = ColumnStackingRegressor(
            models, blocks, fusion.final_estimator, stack_method=fusion.stack_method
        )
    fused.fit_final(np.hstack([r[1] for r in results]), np.asarray(y))
    stamp_inputs(fused, meta)
    return fused, [r[2] for r in results]
