"""Save and load fitted models safely, with skops.

:func:`save` writes a fitted model (a daskfuse meta-estimator such as
:class:`~daskfuse.FusedClassifier`, a plain result of :mod:`daskfuse.models`, or any
plain scikit-learn estimator) in the `skops <https://skops.readthedocs.io>`_ format: a
zip archive of JSON and numpy arrays, never a pickle. :func:`load` reads it back
without running code from the file: before anything is built, it lists the types the
file names and refuses the file if one of them is not on daskfuse's allow-list
(:func:`trusted_types`) or in the ``trusted=`` argument.

What the allow-list holds:

* the types that daskfuse itself produces: its meta-estimators
  (:mod:`daskfuse.estimators`), its fused result models (:mod:`daskfuse.models`), its
  fusion strategies (the :class:`~daskfuse.fusion.Fuser` classes of
  :mod:`daskfuse.fusion` and the vertical fusions of :mod:`daskfuse.vertical`),
  :class:`~daskfuse.partition.Rows` and :class:`~daskfuse.partition.Columns`,
  computed from those modules (a class defined elsewhere, a subclass included, is not
  on it);
* the optimizer objects of scikit-learn's ``sklearn.neural_network`` (the
  ``_optimizer`` of the MLP models that weighted fusion builds: plain Python objects
  holding arrays);
* ``sklearn.tree._tree.Tree``, the node storage of the forests that
  :class:`~daskfuse.fusion.Trees` builds. skops does not trust it by default because a
  crafted file could hold node indices out of range; :func:`load` therefore checks
  every tree it loads (children after their parent and inside the tree, split
  features inside the model's features) before returning the model;
* ``sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor``, the trees
  of the HistGradientBoosting models that daskfuse's voting and stacking fusions
  hold, checked on load the same way (and their categorical bitset indices);
* the root summary that a fit keeps for ``partial_fit`` (``root_summary_``, a
  :class:`~daskfuse._trainer.RootSummary`) and the summary dataclasses of the
  strategies that can be continued (:data:`SUMMARY_TYPES`): plain holders of numbers,
  numpy arrays and fitted estimators, whose estimators and trees are checked on load
  as the model's own; and ``numpy.dtype`` (their dtype field), which skops rebuilds
  from the header of an empty ``.npy`` array. A loaded model continues with
  ``partial_fit``; one saved without a root summary loads, and its ``partial_fit``
  refuses with the reason.

skops itself trusts the scikit-learn estimators, numpy arrays and dtypes, and the
Python builtins (dicts, lists, numbers, strings).

Two attributes are stored differently from how they are held in memory:

* a pandas DataFrame attribute of the model (``partition_report_``) is saved as a
  plain dictionary (column names, column dtypes, and each column as a list of Python
  values) and rebuilt as a DataFrame by :func:`load`, so that no pandas internals and
  no pickle are in the file;
* an attribute holding a lazy dask collection (``FusedClusterer.labels_`` after a fit
  on dask data: a graph over the training rows, not part of the model) is not saved;
  the loaded model lacks it.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import numbers
import os
import pkgutil
import zipfile
import zlib

import numpy as np
import pandas as pd

from ._validation import is_int

__all__ = [
    "MAX_BYTES",
    "ModelFileError",
    "UntrustedTypesError",
    "load",
    "save",
    "trusted_types",
]

#: marks a DataFrame attribute stored as a plain dictionary
FRAME_MARKER = "__daskfuse_frame__"
FRAME_VERSION = 1

#: the node storage of scikit-learn's trees, which skops does not trust by default;
#: :func:`load` checks every tree after loading
TREE_TYPE = "sklearn.tree._tree.Tree"

#: the trees of scikit-learn's HistGradientBoosting models, which skops does not trust
#: by default either; :func:`load` checks them too
HIST_TREE_TYPE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"

#: the scikit-learn modules whose public classes of the given base fused models hold,
#: beyond skops's defaults: the MLP's optimizer (``_optimizer``)
_SKLEARN_EXTRA = (("sklearn.neural_network._stochastic_optimizers", "BaseOptimizer"),)

#: the modules whose public classes daskfuse produces
_MODULES = ("daskfuse.estimators", "daskfuse.models", "daskfuse.partition")

#: the root summary a fit keeps (``root_summary_``) and the summaries it may hold: those
#: of the strategies whose ``FuserTags.partial_fit_reason`` is None
SUMMARY_TYPES = (
    "daskfuse._trainer.RootSummary",
    "daskfuse.fusion.exact.Gram",
    "daskfuse.fusion.exact.RFactor",
    "daskfuse.fusion.exact.ClassMoments",
    "daskfuse.fusion.exact.ClassCounts",
    "daskfuse.fusion.exact.Moments",
    "daskfuse.fusion.exact.Extremes",
    "daskfuse.fusion.average.ParameterSum",
    "daskfuse.fusion.cluster.Centroids",
    "daskfuse.fusion.cluster.CentroidPart",
    "daskfuse.fusion.ensemble.Members",
    "daskfuse.fusion.ensemble.Member",
    # the exact summaries' dtype field: skops rebuilds a dtype from the header of an
    # empty .npy array (no pickle), but does not trust it by default
    "numpy.dtype",
)

#: the default ``max_bytes`` of :func:`load`: what a model file may take once unpacked
#: (the declared sizes of its zip members, nested ``.npz`` archives included)
MAX_BYTES = 2**29

#: fitted attributes whose last axis is the estimator's features (``n_features_in_``)
FEATURE_AXIS = (
    "coef_",
    "components_",
    "cluster_centers_",
    "theta_",
    "var_",
    "mean_",
    "scale_",
)

#: fitted attributes of a classifier whose first axis is its classes (``classes_``)
CLASS_AXIS = ("theta_", "var_", "class_count_", "class_prior_")


class ModelFileError(ValueError):
    """The file is not a model saved by :func:`save` (or by ``skops.io.dump``)."""


class UntrustedTypesError(ModelFileError):
    """The file names types that daskfuse does not trust; nothing of it was built.

    Parameters
    ----------
    path : str
        The file.
    types : list of str
        The fully qualified names of the types that are not trusted.
    """

    def __init__(self, path, types):
        self.path = path
        self.types = sorted(types)
        super().__init__(
            f"{path} holds types that daskfuse does not trust: {self.types}; nothing "
            "was loaded. If you know where the file comes from, review these types "
            "(skops.io.visualize shows where they are in the file) and load it with "
            f"daskfuse.load(path, trusted={self.types!r})"
        )

    def __reduce__(self):
        return (type(self), (self.path, self.types))


# ------------------------------------------------------------------ allow-list
def _type_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _public_classes(module, bases):
    for name, obj in vars(module).items():
        if (
            isinstance(obj, type)
            and not name.startswith("_")
            and obj.__module__ == module.__name__
            and issubclass(obj, bases)
        ):
            yield obj


def trusted_types():
    """The types that :func:`load` trusts besides skops's defaults.

    Computed from daskfuse's modules: the public estimator classes of
    :mod:`daskfuse.estimators` and :mod:`daskfuse.models`, the public
    :class:`~daskfuse.fusion.Fuser` classes of the modules of :mod:`daskfuse.fusion`,
    :class:`~daskfuse.partition.Rows` and :class:`~daskfuse.partition.Columns`, the
    vertical fusions of :mod:`daskfuse.vertical`, the optimizer classes of scikit-learn's MLP
    models, ``sklearn.tree._tree.Tree`` and HistGradientBoosting's ``TreePredictor``
    (both checked on load) and the root summaries of :data:`SUMMARY_TYPES`. Only classes
    defined in those modules count: a subclass defined elsewhere is not trusted.

    Returns
    -------
    names : list of str
        Sorted fully qualified type names, as skops names them.

    Examples
    --------
    >>> from daskfuse.persist import trusted_types
    >>> "daskfuse.estimators.FusedClassifier" in trusted_types()
    True
    >>> "daskfuse.fusion.average.Weighted" in trusted_types()
    True
    """
    from sklearn.base import BaseEstimator

    from . import fusion, vertical
    from .fusion.base import Fuser
    from .partition import Columns, Rows

    names = {_type_name(Rows), _type_name(Columns), TREE_TYPE, HIST_TREE_TYPE, *SUMMARY_TYPES}
    names.update(_type_name(c) for c in _public_classes(vertical, vertical.VerticalFusion))
    for module_name, base_name in _SKLEARN_EXTRA:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - another scikit-learn layout
            continue
        names.update(_type_name(c) for c in _public_classes(module, getattr(module, base_name)))
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        names.update(_type_name(c) for c in _public_classes(module, BaseEstimator))
    for info in pkgutil.iter_modules(fusion.__path__, prefix=f"{fusion.__name__}."):
        module = importlib.import_module(info.name)
        names.update(_type_name(c) for c in _public_classes(module, Fuser))
    return sorted(names)


def _trusted_argument(trusted):
    if trusted is None:
        return []
    if trusted is True or isinstance(trusted, bool):
        raise TypeError(
            "trusted must be a list of type names (or types), not a bool: review the "
            "types named by the error of daskfuse.load and pass those you trust"
        )
    items = [trusted] if isinstance(trusted, str | type) else list(trusted)
    names = []
    for item in items:
        if isinstance(item, type):
            names.append(_type_name(item))
        elif isinstance(item, str):
            names.append(item)
        else:
            raise TypeError(
                f"trusted must hold type names (str) or types; got {type(item).__name__} {item!r}"
            )
    return names


# ------------------------------------------------------------------ DataFrames
def _plain(value):
    """``value`` as builtins that skops stores without extra types (recursively)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    # anything else stays as it is: skops stores it if it can, and load() refuses it
    # if its type is not trusted
    return value


def _frame_to_state(frame):
    return {
        FRAME_MARKER: FRAME_VERSION,
        "columns": [_plain(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "index": _plain(frame.index.tolist()),
        "data": [_plain(frame.iloc[:, i].tolist()) for i in range(frame.shape[1])],
    }


def _is_frame_state(value):
    return isinstance(value, dict) and value.get(FRAME_MARKER) == FRAME_VERSION


def _frame_from_state(state):
    columns = list(state["columns"])
    frame = pd.DataFrame(
        {i: pd.Series(col, dtype=object) for i, col in enumerate(state["data"])},
        index=list(state["index"]),
    )
    frame.columns = columns
    if list(frame.index) == list(range(len(frame))):
        frame = frame.reset_index(drop=True)
    for i, dtype in enumerate(state["dtypes"]):
        if dtype == "object":
            continue
        try:
            frame.isetitem(i, frame.iloc[:, i].astype(dtype))
        except (TypeError, ValueError):
            # keep what pandas infers; the values are right either way
            frame.isetitem(i, frame.iloc[:, i].infer_objects())
    return frame


def _persistable(model):
    """A shallow copy of ``model`` holding only what :func:`save` stores."""
    import dask

    state = getattr(model, "__dict__", None)
    if state is None:
        return model
    changes = {}
    for name, value in state.items():
        if isinstance(value, pd.DataFrame):
            changes[name] = _frame_to_state(value)
        elif dask.is_dask_collection(value):
            changes[name] = None
    if not changes:
        return model
    out = copy.copy(model)
    for name, value in changes.items():
        if value is None:
            delattr(out, name)
        else:
            setattr(out, name, value)
    return out


def _restore_frames(model):
    state = getattr(model, "__dict__", None)
    if state is None:
        return model
    for name, value in list(state.items()):
        if _is_frame_state(value):
            setattr(model, name, _frame_from_state(value))
    return model


# ------------------------------------------------------------------ size checks
def _max_bytes_argument(max_bytes):
    if max_bytes is None:
        return None
    if not is_int(max_bytes):
        raise TypeError(
            f"max_bytes must be a positive int or None (no limit); got "
            f"{type(max_bytes).__name__} {max_bytes!r}"
        )
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int or None (no limit); got {max_bytes}")
    return int(max_bytes)


def _npy_data_bytes(member, name, size, where):
    """The bytes of array data that the header of the ``.npy`` stream declares.

    Reads the header only; raises :class:`ModelFileError` when the stream holds fewer
    bytes (``size`` in all) than the header declares.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(member)
        else:
            raise ValueError(f"npy format version {version} is not supported")
    except ValueError as exc:
        raise ModelFileError(f"{where}: array {name} has no valid npy header: {exc}") from None
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = size - member.tell()
    if declared > held:
        raise ModelFileError(
            f"{where}: array {name} declares shape {shape} of {dtype} ({declared:,} bytes) "
            f"but holds {held:,} bytes of data"
        )
    return declared


def _unpacked_bytes(archive, where, max_bytes, prefix="", counted=0):
    """The bytes that unpacking ``archive`` (a ZipFile) takes, checked against ``max_bytes``.

    Counts the declared size of every member (which :mod:`zipfile` enforces while
    reading), and of the members of nested ``.npz`` archives, before anything is
    unpacked; checks each ``.npy`` header against its member's size. ``counted``:
    the bytes already counted (of the archive holding this one).
    """
    total = counted
    for info in archive.infolist():
        name = f"{prefix}{info.filename}"
        total += info.file_size
        if max_bytes is not None and total > max_bytes:
            raise ModelFileError(
                f"{where}: unpacked, the file takes more than max_bytes={max_bytes:,} "
                f"bytes (its member {name} alone {info.file_size:,}); nothing was loaded. "
                "If the model is this large and you trust the file, load it with a "
                "larger max_bytes (--max-bytes on the command line)"
            )
        suffix = info.filename.lower()
        if suffix.endswith((".npy", ".npz")):
            with archive.open(info) as member:
                if suffix.endswith(".npy"):
                    _npy_data_bytes(member, name, info.file_size, where)
                else:
                    with zipfile.ZipFile(member) as inner:
                        total = _unpacked_bytes(inner, where, max_bytes, f"{name}/", total)
    return total


def _check_size(path, max_bytes):
    """Refuse the file at ``path`` if it would unpack to more than ``max_bytes``."""
    try:
        with zipfile.ZipFile(path) as archive:
            _unpacked_bytes(archive, path, max_bytes)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ModelFileError(
            f"{path} is not a model file written by daskfuse.save (a skops file): {_reason(exc)}"
        ) from None


# ------------------------------------------------------------------ tree checks
def _check_tree(tree, n_features, where):
    """Raise :class:`ModelFileError` unless every index in ``tree`` is in range."""
    count, capacity = int(tree.node_count), int(tree.capacity)
    problem = None
    if not 0 < count <= capacity:
        problem = f"node_count {count} outside 1..{capacity}"
    elif n_features is not None and int(tree.n_features) != n_features:
        problem = f"n_features {tree.n_features} differs from the model's {n_features}"
    else:
        left = np.asarray(tree.children_left)
        right = np.asarray(tree.children_right)
        feature = np.asarray(tree.feature)
        index = np.arange(count)
        leaf = left == -1
        inner = ~leaf
        if np.any(right[leaf] != -1):
            problem = "a leaf with a right child"
        elif np.any((left[inner] <= index[inner]) | (left[inner] >= count)) or np.any(
            (right[inner] <= index[inner]) | (right[inner] >= count)
        ):
            # scikit-learn numbers a node's children after the node itself
            problem = "child node indices out of range"
        elif np.any((feature[inner] < 0) | (feature[inner] >= tree.n_features)):
            problem = "split features out of range"
    if problem is not None:
        raise ModelFileError(f"{where}: corrupt decision tree ({problem})")


def _check_hist_tree(predictor, n_features, where):
    """Raise :class:`ModelFileError` unless every index in a ``TreePredictor`` is in range."""
    nodes = np.asarray(predictor.nodes)
    count = len(nodes)
    inner = ~nodes["is_leaf"].astype(bool)
    index = np.arange(count)
    left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
    feature = nodes["feature_idx"].astype(np.int64)
    bitsets = nodes["bitset_idx"][inner & nodes["is_categorical"].astype(bool)].astype(np.int64)
    n_bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
    problem = None
    if count == 0:
        problem = "no nodes"
    elif np.any((left[inner] <= index[inner]) | (left[inner] >= count)) or np.any(
        (right[inner] <= index[inner]) | (right[inner] >= count)
    ):
        problem = "child node indices out of range"
    elif n_features is not None and np.any((feature[inner] < 0) | (feature[inner] >= n_features)):
        problem = "split features out of range"
    elif np.any((bitsets < 0) | (bitsets >= n_bitsets)):
        problem = "categorical bitset indices out of range"
    if problem is not None:
        raise ModelFileError(f"{where}: corrupt histogram gradient-boosting tree ({problem})")


def _reachable(obj, n_features=None, seen=None):
    """Yield ``(item, n_features)`` for every tree and estimator reachable from ``obj``.

    ``item`` is a tree (``sklearn.tree._tree.Tree``, ``TreePredictor``) or an estimator;
    ``n_features`` is the ``n_features_in_`` of the nearest estimator holding it
    (itself, for an estimator).
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Tree | TreePredictor):
        yield obj, n_features
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _reachable(value, n_features, seen)
    elif isinstance(obj, list | tuple):
        for value in obj:
            yield from _reachable(value, n_features, seen)
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            for value in obj.ravel():
                yield from _reachable(value, n_features, seen)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # a kept root summary (partial_fit): its estimators and trees are checked too
        for item in dataclasses.fields(obj):
            yield from _reachable(getattr(obj, item.name), n_features, seen)
    elif hasattr(obj, "__dict__") and hasattr(obj, "get_params"):
        n = getattr(obj, "n_features_in_", n_features)
        n = int(n) if isinstance(n, numbers.Integral) else n_features
        yield obj, n
        for value in vars(obj).values():
            yield from _reachable(value, n, seen)


def _check_trees(obj, where):
    """Check every tree (``Tree``, ``TreePredictor``) reachable from ``obj``."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    for item, n_features in _reachable(obj):
        if isinstance(item, Tree):
            _check_tree(item, n_features, where)
        elif isinstance(item, TreePredictor):
            _check_hist_tree(item, n_features, where)


# ------------------------------------------------------------------ shape checks
def _shape_problem(name, value, axis, expected, why):
    """A message if ``value`` (an array attribute) is not ``expected`` long on ``axis``."""
    if not isinstance(value, np.ndarray) or value.ndim == 0 or expected is None:
        return None
    if value.shape[axis] == expected:
        return None
    which = "last" if axis == -1 else "first"
    return f"{name} has shape {value.shape}; expected {expected} on its {which} axis ({why})"


def _linear_problems(state, n_classes):
    """Problems of ``coef_`` and ``intercept_`` against features, classes and each other."""
    coef, intercept = state.get("coef_"), state.get("intercept_")
    if not isinstance(coef, np.ndarray):
        return
    if n_classes is not None and coef.ndim == 2:
        rows = 1 if n_classes <= 2 else n_classes
        yield _shape_problem(
            "coef_", coef, 0, rows, f"one row {'per class' if rows > 1 else 'for 2 classes'}"
        )
    if isinstance(intercept, np.ndarray) and intercept.ndim > 0:
        rows = coef.shape[0] if coef.ndim == 2 else 1
        if intercept.shape != (rows,):
            yield (
                f"intercept_ has shape {intercept.shape}; expected ({rows},) (one per row "
                f"of coef_, of shape {coef.shape})"
            )


def _mlp_problems(state, n_features):
    """Problems of an MLP's ``coefs_`` and ``intercepts_`` (the layers must chain)."""
    coefs, intercepts = state.get("coefs_"), state.get("intercepts_")
    if not isinstance(coefs, list) or not isinstance(intercepts, list):
        return
    if len(coefs) != len(intercepts):
        yield f"coefs_ holds {len(coefs)} layers but intercepts_ {len(intercepts)}"
        return
    width = n_features
    for i, (coef, intercept) in enumerate(zip(coefs, intercepts)):
        if not isinstance(coef, np.ndarray) or coef.ndim != 2:
            yield f"coefs_[{i}] is not a 2-d array"
            return
        why = "the features" if i == 0 else f"the columns of coefs_[{i - 1}]"
        yield _shape_problem(f"coefs_[{i}]", coef, 0, width, why)
        yield _shape_problem(
            f"intercepts_[{i}]", intercept, 0, coef.shape[1], f"the columns of coefs_[{i}]"
        )
        width = coef.shape[1]


def _forest_problems(estimator, n_features):
    """Problems of the trees of a scikit-learn forest against the forest's features."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    forests = (
        RandomForestClassifier,
        RandomForestRegressor,
        ExtraTreesClassifier,
        ExtraTreesRegressor,
    )
    if not isinstance(estimator, forests) or n_features is None:
        return
    for i, tree in enumerate(vars(estimator).get("estimators_", [])):
        for name, n in (
            ("n_features_in_", getattr(tree, "n_features_in_", None)),
            ("tree_.n_features", getattr(getattr(tree, "tree_", None), "n_features", None)),
        ):
            if n is not None and n != n_features:
                yield (
                    f"estimators_[{i}].{name} is {n}; expected {n_features} (the "
                    "forest's n_features_in_)"
                )


def _estimator_problems(estimator, n_features):
    """What is inconsistent in the fitted array attributes of one estimator."""
    from sklearn.base import is_classifier

    state = vars(estimator)
    names = state.get("feature_names_in_")
    if isinstance(names, np.ndarray) and n_features is not None and len(names) != n_features:
        yield f"feature_names_in_ holds {len(names)} names; expected {n_features}"
    for name in FEATURE_AXIS:
        yield _shape_problem(name, state.get(name), -1, n_features, "n_features_in_")
    classes = state.get("classes_")
    n_classes = None
    if is_classifier(estimator) and isinstance(classes, np.ndarray) and classes.ndim == 1:
        n_classes = len(classes)
        for name in CLASS_AXIS:
            yield _shape_problem(name, state.get(name), 0, n_classes, "one per class")
    yield from _linear_problems(state, n_classes)
    yield from _mlp_problems(state, n_features)
    yield from _forest_problems(estimator, n_features)


def _check_shapes(model, where):
    """Raise :class:`ModelFileError` if an estimator's arrays contradict its shape.

    Every estimator reachable from ``model`` is checked against its own
    ``n_features_in_`` and ``classes_``: the feature axis of ``coef_``,
    ``components_``, ``cluster_centers_`` and the like, the class axis of a
    classifier's ``coef_`` and per-class arrays, ``intercept_`` against ``coef_``,
    the layers of an MLP, and the trees of a forest.
    """
    for item, _ in _reachable(model):
        if not hasattr(item, "get_params"):  # a tree: checked by _check_trees
            continue
        n_features = getattr(item, "n_features_in_", None)
        n_features = int(n_features) if isinstance(n_features, numbers.Integral) else None
        for problem in _estimator_problems(item, n_features):
            if problem is not None:
                raise ModelFileError(
                    f"{where}: {type(item).__name__}.{problem}; the file is corrupt or was altered"
                )


# ------------------------------------------------------------------ public API
def _check_model(model, what):
    if not (hasattr(model, "get_params") and hasattr(model, "fit")):
        raise TypeError(
            f"{what} must be a scikit-learn estimator (a daskfuse model or a plain "
            f"scikit-learn estimator); got {type(model).__name__}"
        )


def save(model, path):
    """Write a fitted model to ``path`` in the skops format (no pickle).

    Parameters
    ----------
    model : estimator
        A daskfuse meta-estimator (:class:`~daskfuse.FusedClassifier`,
        :class:`~daskfuse.FusedRegressor`, :class:`~daskfuse.FusedTransformer`,
        :class:`~daskfuse.FusedClusterer`), a model of :mod:`daskfuse.models`, or a
        plain scikit-learn estimator. It is not changed.
    path : str or os.PathLike
        The file to write (replaced if it exists); ``.skops`` is the usual suffix.

    Notes
    -----
    A DataFrame attribute (``partition_report_``) is stored as a plain dictionary of
    columns and rebuilt by :func:`load`; an attribute holding a lazy dask collection
    (``FusedClusterer.labels_`` after a fit on dask data) is left out.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from daskfuse import FusedClassifier
    >>> from daskfuse.persist import load, save
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save(clf, os.path.join(folder, "model.skops"))
    ...     same = load(os.path.join(folder, "model.skops"))
    >>> bool((same.predict(X) == clf.predict(X)).all())
    True
    >>> len(same.partition_report_)
    2
    """
    import skops.io

    _check_model(model, "model")
    skops.io.dump(_persistable(model), os.fspath(path))


def load(path, trusted=None, max_bytes=MAX_BYTES):
    """Read a model written by :func:`save`, without running code from the file.

    The types named in the file are checked before anything is built: those that
    skops trusts by default (scikit-learn estimators, numpy, builtins), those of
    :func:`trusted_types` and those in ``trusted`` are allowed; any other type makes
    the load fail with :class:`UntrustedTypesError`, which names them.

    Before that, the size the file unpacks to is checked against ``max_bytes``,
    from the sizes that its zip members and array headers declare (nothing is
    unpacked or allocated for it): a small file of compressed zeros cannot become a
    huge array. After the model is built, its array attributes are checked against
    the model they belong to (``coef_`` against ``n_features_in_`` and
    ``classes_``, ``intercept_`` against ``coef_``, the trees of a forest against
    its features, ...), and the trees of fused forests are checked for consistency.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save` (or by ``skops.io.dump``).
    trusted : list of str or type, default=None
        More types to trust, by fully qualified name (as the error names them) or as
        types. Pass only types that you have reviewed: a trusted type's code runs
        when the model is built.
    max_bytes : int or None, default=MAX_BYTES
        The most bytes that the file may take once unpacked (the sum of the sizes
        its zip members declare, nested archives included); the default is 512 MiB
        (:data:`MAX_BYTES`). None sets no limit: only for files that you trust.

    Returns
    -------
    model : estimator
        The model; a DataFrame attribute saved by :func:`save` is a DataFrame again.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    UntrustedTypesError
        The file names types that are not trusted; nothing was built.
    ModelFileError
        The file is not a skops file, is corrupt, unpacks to more than
        ``max_bytes``, does not hold an estimator, or holds arrays whose shapes
        contradict the model (the message names the attribute, the shape expected
        and the shape found).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.preprocessing import StandardScaler
    >>> from daskfuse.persist import load, save
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save(StandardScaler().fit([[0.0], [2.0]]), os.path.join(folder, "s.skops"))
    ...     scaler = load(os.path.join(folder, "s.skops"))
    >>> scaler.mean_
    array([1.])
    """
    import skops.io

    path = os.fspath(path)
    extra = _trusted_argument(trusted)
    max_bytes = _max_bytes_argument(max_bytes)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a directory, not a model file")
    _check_size(path, max_bytes)
    try:
        found = skops.io.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ModelFileError(
            f"{path} is not a model file written by daskfuse.save (a skops file): {_reason(exc)}"
        ) from None
    allowed = set(trusted_types()) | set(extra)
    untrusted = sorted(set(found) - allowed)
    if untrusted:
        raise UntrustedTypesError(path, untrusted)
    try:
        model = skops.io.load(path, trusted=sorted(set(found)))
    except (ImportError, AttributeError, KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: cannot build the model: {_reason(exc)}") from None
    if not (hasattr(model, "get_params") and hasattr(model, "fit")):
        raise ModelFileError(f"{path} holds a {type(model).__name__}, not a scikit-learn estimator")
    _restore_frames(model)
    _check_trees(model, path)
    _check_shapes(model, path)
    return model


def _reason(exc):
    text = str(exc).strip().splitlines()
    text = text[0] if text else ""
    name = type(exc).__name__
    if isinstance(exc, KeyError):
        return f"missing entry {text}"
    return f"{name}: {text}" if text else name
