"""``fuse``: fuse models that were fitted elsewhere."""

from __future__ import annotations

from functools import reduce

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from ._adapters import adapter_for
from .exceptions import FusionError
from .fusion import available_fusions, resolve_fusion
from .fusion.average import weight_scale

__all__ = ["fuse"]


def _check_models(models):
    if not models:
        raise ValueError("models must hold at least one fitted estimator; got none")
    kind = type(models[0])
    for i, model in enumerate(models):
        if not hasattr(model, "get_params"):
            raise TypeError(f"models[{i}] is not a scikit-learn estimator: {model!r}")
        if type(model) is not kind:
            raise FusionError(
                f"models must be of one type: models[0] is {kind.__name__}, "
                f"models[{i}] is {type(model).__name__}"
            )
        check_is_fitted(model)
    n_features = {getattr(m, "n_features_in_", None) for m in models}
    if len(n_features) > 1:
        raise FusionError(
            f"models were fitted on different numbers of features: {sorted(n_features, key=str)}"
        )
    names = [getattr(m, "feature_names_in_", None) for m in models]
    if any(n is not None for n in names) and not all(
        n is not None and np.array_equal(n, names[0]) for n in names
    ):
        raise FusionError("models were fitted on different feature names")
    if is_classifier(models[0]):
        dtypes = {np.asarray(m.classes_).dtype.kind for m in models}
        if len(dtypes) > 1 and not dtypes <= {"i", "u"}:
            raise FusionError(
                f"models' classes_ have incompatible label types (dtype kinds {sorted(dtypes)})"
            )


def _check_weights(weights, n):
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weights must have one entry per model ({n}); got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"weights must be finite, >= 0 and not all zero; got {w.tolist()}")
    return w


def _hook(fuser, name):
    """``fuser``'s method ``name``, or that of the strategy it wraps; None if neither."""
    while not hasattr(fuser, name) and getattr(fuser, "inner", None) is not None:
        fuser = fuser.inner
    return getattr(fuser, name, None)


def _check_fuser_weights(tags, weights):
    """Refuse ``weights`` that the strategy (or the one it wraps) would ignore."""
    reason = None if weights is None else tags.given_weights_reason
    if reason is not None:
        raise ValueError(f"weights were given, but {reason} (or leave weights out)")


def fuse(models, fusion="auto", *, weights=None):
    """Fuse models that were already fitted (elsewhere) into one estimator.

    Parameters
    ----------
    models : sequence of fitted estimators
        Models of one type, fitted on the same features. Classifiers may have seen
        different subsets of the classes.
    fusion : str or daskfuse.fusion.Fuser, default="auto"
        A strategy that can work from fitted models alone (``FuserTags.from_models``):
        parameter averaging (``"average"``, ``"weighted"``) and the others that say
        so. ``"auto"`` picks as :class:`~daskfuse.FusedClassifier` does.
    weights : array-like of shape (n_models,), default=None
        Weight of each model (e.g. its number of training rows); None weighs them
        equally. Only their ratios matter (parameter averaging scales them exactly
        by a power of two, so huge finite weights do not overflow). Honoured by
        ``"weighted"``, ``Median(weighted=True)``, ``TrimmedMean(weighted=True)``,
        ``Krum`` (its average of the ``m`` best models) and ``Vote(weights="rows")``;
        a parameter averaging that would ignore them (``"average"``, unweighted
        ``Median``/``TrimmedMean``, ``Weighted(by=[...])`` or ``by="score"``)
        refuses them with a ValueError.

    Returns
    -------
    estimator : estimator
        A plain fitted scikit-learn estimator.

    Raises
    ------
    ValueError
        ``weights`` are malformed, or given to a strategy that has no weighted form.
    FusionError
        The models are not compatible (type, features, label types), the strategy
        needs the training rows, or it averages parameters and the models differ in
        a parameter that changes what they mean (``fit_intercept``, ``loss``,
        ``penalty``, ``multi_class``, ``activation``, ``hidden_layer_sizes``).

    Warns
    -----
    UserWarning
        Parameter averaging of models that differ in other parameters (``alpha``,
        ``C``, ``max_iter``...): their coefficients mean the same, but were fitted
        differently.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from daskfuse import fuse
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> a = LinearRegression().fit(X, X @ [1.0, 1.0])
    >>> b = LinearRegression().fit(X, X @ [1.0, 1.0] + 2)
    >>> round(float(fuse([a, b], weights=[3, 1]).intercept_), 6)
    0.5
    """
    models = list(models)
    _check_models(models)
    w = _check_weights(weights, len(models))
    fuser = resolve_fusion(fusion, models[0], from_models=True)
    tags = fuser.tags(models[0])
    _check_fuser(fuser, tags, models, weights)
    # (called here: their warnings point at the caller of fuse)
    check_models = _hook(fuser, "check_models")
    if check_models is not None:
        check_models(models)
    fuser.prepare(len(models))
    adapter = adapter_for(models[0])
    if adapter is not None:
        adapter.warn_unshared_init(models)
    classes = None
    if is_classifier(models[0]):
        classes = reduce(np.union1d, [np.asarray(m.classes_) for m in models])
    summaries = _summaries(fuser, models, w, classes if tags.needs_classes else None)
    meta = {
        "n_features_in_": models[0].n_features_in_,
        "feature_names_in_": getattr(models[0], "feature_names_in_", None),
        "classes": classes,
        "n_partitions": len(models),
    }
    return fuser.finalize(fuser.combine(summaries), models[0], meta)


def _check_fuser(fuser, tags, models, weights):
    """Refuse a strategy that cannot fuse ``models`` without their rows, or would
    ignore ``weights``."""
    if not tags.from_models:
        able = available_fusions(models[0], from_models=True)
        raise FusionError(
            f"fusion={fuser!r} needs the training rows, not only fitted models; "
            f"strategies that fuse fitted {type(models[0]).__name__} models: "
            f"{', '.join(map(repr, able)) or 'none'}. To fuse from data use "
            "FusedClassifier/FusedRegressor/FusedTransformer/FusedClusterer"
        )
    _check_fuser_weights(tags, weights)


def _summaries(fuser, models, w, classes):
    """Every model's summary; ``w`` are their weights, ``classes`` the global list."""
    secrets = fuser.partition_secrets(len(models))
    # exact power-of-two rescaling: huge weights cannot overflow their sums
    scale = weight_scale(w)
    summaries = []
    for i, (model, wi) in enumerate(zip(models, w)):
        info = {
            "index": i,
            "n_rows": wi,
            "holdout_score": None,
            "classes": classes,
            "seed": None,
            "template": models[0],
            "secret": None if secrets is None else secrets[i],
            "weight_scale": scale,
        }
        summaries.append(fuser.summarize(model, None, None, info))
    return summaries
