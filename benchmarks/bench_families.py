"""Model-family benchmark: daskfuse against single-process scikit-learn and dask-ml.

One case per model family that daskfuse fuses, each timed and checked for
fidelity against the single-process scikit-learn fit on the same rows and,
where dask-ml has an equivalent, against dask-ml, all in one process on one
shared ``distributed.LocalCluster``.

Families (``--only`` takes these names, their numbers, or case keys)
-------------------------------------------------------------------
1 ``linear``
    ``FusedRegressor(LinearRegression())`` and ``FusedRegressor(Ridge())`` with
    exact fusion against scikit-learn and ``dask_ml.linear_model.LinearRegression()``
    (its default ``solver="admm"``): held-out R², max relative coefficient
    difference to scikit-learn.
2 ``nb``
    ``FusedClassifier(GaussianNB())``, exact, against scikit-learn and
    ``dask_ml.naive_bayes.GaussianNB``: accuracy, max ``|theta diff|``.
3 ``scaler-pca``
    ``FusedTransformer(StandardScaler())`` and ``FusedTransformer(PCA(10))``,
    exact, against scikit-learn (``PCA(svd_solver="full")``) and dask-ml's
    ``StandardScaler`` and ``PCA`` (its default ``svd_solver="auto"``, which picks
    the randomized solver here, and the exact ``svd_solver="tsqr"``): differences
    of the fitted statistics.
4 ``kmeans``
    ``FusedClusterer(KMeans(n_clusters=8))`` (centroid reclustering) against
    scikit-learn ``KMeans`` (default ``n_init="auto"``, i.e. one k-means++ run, and
    ``n_init=10``) and ``dask_ml.cluster.KMeans(n_clusters=8)``: inertia on all
    training rows and its ratio to scikit-learn's.
5 ``rf``
    ``FusedClassifier(RandomForestClassifier(n_estimators=T / P))`` (tree union, T
    trees in all over P partitions) against one ``RandomForestClassifier(T)`` with
    ``n_jobs=1`` and ``n_jobs=2``: accuracy.
6 ``svc``
    ``FusedClassifier(SVC())`` (RBF kernel) with voting and with stacking against one
    ``SVC()``: accuracy (and the untimed prediction time, as the fused model holds
    every partition's support vectors).
7 ``mlp``
    ``FusedClassifier(MLPClassifier(...))`` with weighted parameter averaging from a
    shared initialisation against one ``MLPClassifier``: accuracy.

The fusion is chosen by name where ``daskfuse.fusion.FUSERS`` registers it, else by
instantiating its class from ``daskfuse.fusion.exact`` / ``.cluster`` /
``.ensemble``; the JSON records which.

What is timed
-------------
As in ``bench_linear.py``: only ``fit``. The data are generated inside the cluster,
persisted there and gathered once into NumPy for the single-process anchors before
any timing; every case is fitted ``--repeats`` times on a fresh clone, with an
untimed wait before each fit until the scheduler has released the previous fit's
tasks (dask-ml and daskfuse build deterministic graph keys), and the median is
reported. Where a fit leaves fitted attributes as lazy dask collections (dask-ml's
``GaussianNB``; ``PCA.mean_``), computing them is part of the timed fit (the lazy ``fit`` alone is
recorded as ``lazy_fit_seconds``); lazy ``labels_`` are left lazy. Quality and
fidelity are computed afterwards, outside the timed region, from the fitted
attributes and from predictions on a held-out test set (NumPy for scikit-learn and
daskfuse, whose fused model is a plain scikit-learn estimator; the persisted dask
test set for dask-ml). Ratios are ``anchor_seconds / daskfuse_seconds``: above 1
means daskfuse fitted faster. A case that raises is recorded with its error
string; the run goes on.

Sizes (``--rows`` / ``--chunk`` change them per data set)
------------------------------------------------------
========  ======================  ===================  ==========  ==================
data set  used by                 default              partitions  ``--quick``
========  ======================  ===================  ==========  ==================
linear    linear, scaler-pca      2,000,000 x 50       8           200,000 (8 parts)
gnb       nb                      2,000,000 x 20       8           200,000 (8 parts)
blobs     kmeans                  200,000 x 20, k=8    8           100,000 (8 parts)
rf        rf                      50,000 x 10          4           10,000 (4 parts)
svc       svc                     20,000 x 10          4           6,000 (4 parts)
mlp       mlp                     200,000 x 10         8           40,000 (4 parts)
========  ======================  ===================  ==========  ==================

The default run (3 repeats; dask-ml's ``LinearRegression``, about a minute per fit
there, only ``--slow-repeats`` = 1) is estimated at about 14 minutes on a loaded
2-core machine (from a 1-repeat calibration run); ``--quick`` (1 repeat) takes 100
to 165 seconds there, depending on the other load.

Usage
-----
::

    python benchmarks/bench_families.py --quick          # smoke run, 1 repeat
    python benchmarks/bench_families.py                  # default sizes, 3 repeats
    python benchmarks/bench_families.py --only kmeans 6  # some families
    python benchmarks/bench_families.py --rows blobs=1000000 --chunk blobs=125000
    python benchmarks/bench_families.py --list           # the case keys

Results go to ``benchmarks/results/families.json`` and ``families.md``
(``--quick``: ``families_quick.*``). The column ``task s / fit s`` of a daskfuse row is
the seconds of its partition tasks over the seconds of the estimators' ``fit`` in
them (from ``partition_report_``, summed over every fit of the case; "—" where the
strategy fits no partition model).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import dask
import numpy as np

# ------------------------------------------------------------------------ datasets

#: name: (generator, features, rows, rows per partition, held-out rows)
DATASETS: dict[str, tuple[str, int, int, int, int]] = {
    "linear": ("linear", 50, 2_000_000, 250_000, 100_000),
    "gnb": ("gnb", 20, 2_000_000, 250_000, 200_000),
    "blobs": ("blobs", 20, 200_000, 25_000, 0),
    "rf": ("nonlinear", 10, 50_000, 12_500, 50_000),
    "svc": ("nonlinear", 10, 20_000, 5_000, 10_000),
    "mlp": ("nonlinear", 10, 200_000, 25_000, 50_000),
}
#: --quick: (rows, rows per partition, held-out rows)
QUICK_SIZES: dict[str, tuple[int, int, int]] = {
    "linear": (200_000, 25_000, 20_000),
    "gnb": (200_000, 25_000, 20_000),
    "blobs": (100_000, 12_500, 0),
    "rf": (10_000, 2_500, 10_000),
    "svc": (6_000, 1_500, 4_000),
    "mlp": (40_000, 10_000, 10_000),
}
N_CLUSTERS = 8
PCA_COMPONENTS = 10
GNB_PRIORS = (0.5, 0.3, 0.2)


def make_params(generator: str, n_features: int, seed: int) -> dict[str, Any]:
    """The fixed, seeded parameters of a data generator (drawn in the driver)."""
    rng = np.random.default_rng([seed, 101, n_features, len(generator)])
    if generator == "linear":
        # X = Z @ mix + mu: covariance with a decaying spectrum (distinct leading principal
        # directions for PCA) but condition number <= 16; every |coef| in [0.5, 2].
        q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
        scales = 1.0 + 3.0 * 0.8 ** np.arange(n_features)
        return {
            "mix": scales[:, None] * q,
            "mu": rng.uniform(-3, 3, n_features),
            "coef": rng.uniform(0.5, 2.0, n_features) * rng.choice([-1.0, 1.0], n_features),
            "intercept": 1.5,
            "noise": 1.0,
        }
    if generator == "gnb":
        # Gaussian classes with independent features: GaussianNB's own model.
        k = len(GNB_PRIORS)
        return {
            "means": rng.standard_normal((k, n_features)),
            "stds": rng.uniform(0.5, 2.0, (k, n_features)),
            "priors": np.asarray(GNB_PRIORS),
        }
    if generator == "blobs":
        # like sklearn.datasets.make_blobs: centres in [-10, 10], unit standard deviation
        return {"centers": rng.uniform(-10, 10, (N_CLUSTERS, n_features)), "std": 1.0}
    if generator == "nonlinear":
        return {}
    raise ValueError(generator)


def _block(
    n: int,
    block: int,
    *,
    generator: str,
    params: dict[str, Any],
    n_features: int,
    seed_key: list[int],
):
    """Row block ``block``: ``n`` rows of features plus a last column holding the target."""
    rng = np.random.default_rng([*seed_key, block])
    if generator == "linear":
        x = rng.standard_normal((n, n_features)) @ params["mix"] + params["mu"]
        y = x @ params["coef"] + params["intercept"] + params["noise"] * rng.standard_normal(n)
    elif generator == "gnb":
        y = rng.choice(len(params["priors"]), size=n, p=params["priors"]).astype(np.float64)
        labels = y.astype(np.int64)
        x = params["means"][labels] + params["stds"][labels] * rng.standard_normal((n, n_features))
    elif generator == "blobs":
        y = rng.integers(0, len(params["centers"]), n).astype(np.float64)
        x = params["centers"][y.astype(np.int64)] + params["std"] * rng.standard_normal(
            (n, n_features)
        )
    else:  # nonlinear binary rule on the first five features, the rest are noise
        x = rng.standard_normal((n, n_features))
        f = x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + 0.5 * (x[:, 3] ** 2 - 1) + 0.5 * x[:, 4]
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-4.0 * f))).astype(np.float64)
    return np.column_stack([x, y])


# --------------------------------------------------------------------------- cases

FAMILIES = ("linear", "nb", "scaler-pca", "kmeans", "rf", "svc", "mlp")
#: imported in every worker (and the driver) before any timing
WARM_MODULES = (
    "sklearn.linear_model",
    "sklearn.naive_bayes",
    "sklearn.preprocessing",
    "sklearn.decomposition",
    "sklearn.cluster",
    "sklearn.ensemble",
    "sklearn.svm",
    "sklearn.neural_network",
    "dask_ml.linear_model",
    "dask_ml.naive_bayes",
    "dask_ml.preprocessing",
    "dask_ml.decomposition",
    "dask_ml.cluster",
    "daskfuse",
    "daskfuse.fusion.exact",
    "daskfuse.fusion.cluster",
    "daskfuse.fusion.ensemble",
)

#: fusion name -> (module, class) used when daskfuse.fusion.FUSERS does not register it
FUSER_CLASSES = {
    "exact": ("daskfuse.fusion.exact", "Exact"),
    "weighted": ("daskfuse.fusion.average", "Weighted"),
    "recluster": ("daskfuse.fusion.cluster", "Recluster"),
    "vote": ("daskfuse.fusion.ensemble", "Vote"),
    "stack": ("daskfuse.fusion.ensemble", "Stack"),
    "trees": ("daskfuse.fusion.ensemble", "Trees"),
}


def fusion(name: str) -> Any:
    """``name`` where ``daskfuse.fusion.FUSERS`` registers it, else an instance of its class."""
    from daskfuse.fusion import FUSERS

    if name in FUSERS:
        return name
    module, cls = FUSER_CLASSES[name]
    return getattr(importlib.import_module(module), cls)()


@dataclass
class Case:
    """One benchmarked method."""

    key: str
    family: str
    group: str  # cases of a group fit the same model: ratios and fidelity compare within it
    label: str
    library: str  # "daskfuse", "scikit-learn" or "dask-ml"
    on: str  # "dask" (fit on the persisted dask arrays) or "numpy" (driver process)
    dataset: str
    make: Callable[[dict[str, Any]], Any]  # gets the dataset (rows, partitions, ...)
    supervised: bool = True
    reference: str | None = None  # key of the scikit-learn case it is compared with
    slow: bool = False  # fitted at most --slow-repeats times


#: the scikit-learn case every other case of a group is compared with (default sklearn-GROUP)
REFERENCES = {"rf": "sklearn-rf-jobs1"}
LIBRARIES = {"daskfuse": "daskfuse", "sklearn": "scikit-learn", "daskml": "dask-ml"}
#: fitted at most ``--slow-repeats`` times (default 1): dask-ml's ADMM least squares takes
#: about a minute per fit on the default 2,000,000 x 50 (loaded 2-core machine)
SLOW_CASES = frozenset({"daskml-linreg"})
#: --quick (a smoke run, not a measurement) cuts the iterations of dask-ml's two slow
#: estimators, whose defaults take minutes whatever the data size
DASKML_QUICK = {"linreg": {"max_iter": 5}, "kmeans": {"init_max_iter": 1, "max_iter": 10}}
#: groups whose metrics compare fitted attributes with the scikit-learn reference
FIDELITY_GROUPS = frozenset({"linreg", "ridge", "gnb", "scaler", "pca", "kmeans"})


def build_cases(args: argparse.Namespace) -> list[Case]:
    """All cases, in family order; estimators are imported lazily (a missing one is an error).

    A case's library (and where it fits) follows from its key's prefix; in each group
    the daskfuse cases come first, as in ``bench_linear.py``.
    """
    from sklearn.base import clone

    def est(path: str, **params: Any) -> Callable[[dict[str, Any]], Any]:
        module, _, name = path.rpartition(".")

        def make(ds: dict[str, Any]) -> Any:
            return getattr(importlib.import_module(module), name)(**params)

        return make

    def fused(wrapper: str, base: Callable[[dict[str, Any]], Any], how: str, **kw: Any):
        def make(ds: dict[str, Any]) -> Any:
            import daskfuse

            return getattr(daskfuse, wrapper)(clone(base(ds)), fusion=fusion(how), **kw)

        return make

    def rf_per_partition(ds: dict[str, Any]) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=max(1, round(args.rf_trees / ds["partitions"])))

    def quick(name: str) -> dict[str, Any]:
        return DASKML_QUICK[name] if args.quick else {}

    def quick_note(params: dict[str, Any]) -> str:
        if not args.quick:
            return ""
        return " (quick: " + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"

    linreg = est("sklearn.linear_model.LinearRegression")
    ridge = est("sklearn.linear_model.Ridge", alpha=1.0)
    scaler = est("sklearn.preprocessing.StandardScaler")
    pca = est("sklearn.decomposition.PCA", n_components=PCA_COMPONENTS)
    kmeans = est("sklearn.cluster.KMeans", n_clusters=N_CLUSTERS, random_state=0)
    rf = est("sklearn.ensemble.RandomForestClassifier", n_estimators=args.rf_trees, random_state=0)
    mlp = est(
        "sklearn.neural_network.MLPClassifier",
        hidden_layer_sizes=(args.mlp_hidden,),
        max_iter=args.mlp_max_iter,
        random_state=0,
    )
    svc = est("sklearn.svm.SVC")
    k, nc, h, t = N_CLUSTERS, PCA_COMPONENTS, args.mlp_hidden, args.rf_trees
    # (family, data set, supervised): [(key, group, label, make), ...]
    spec = {
        ("linear", "linear", True): [
            # exact fusion: R factors of a TSQR of [X | y]
            (
                "daskfuse-linreg",
                "linreg",
                "FusedRegressor(LinearRegression), exact",
                fused("FusedRegressor", linreg, "exact"),
            ),
            ("sklearn-linreg", "linreg", "LinearRegression, one process", linreg),
            (
                "daskml-linreg",
                "linreg",
                "LinearRegression() (default solver='admm')" + quick_note(DASKML_QUICK["linreg"]),
                est("dask_ml.linear_model.LinearRegression", **quick("linreg")),
            ),
            (
                "daskfuse-ridge",
                "ridge",
                "FusedRegressor(Ridge(alpha=1)), exact",
                fused("FusedRegressor", ridge, "exact"),
            ),
            ("sklearn-ridge", "ridge", "Ridge(alpha=1), one process", ridge),
        ],
        ("nb", "gnb", True): [
            # exact: per-class counts, means and squared deviations
            (
                "daskfuse-gnb",
                "gnb",
                "FusedClassifier(GaussianNB), exact",
                fused("FusedClassifier", est("sklearn.naive_bayes.GaussianNB"), "exact"),
            ),
            (
                "sklearn-gnb",
                "gnb",
                "GaussianNB, one process",
                est("sklearn.naive_bayes.GaussianNB"),
            ),
            ("daskml-gnb", "gnb", "GaussianNB", est("dask_ml.naive_bayes.GaussianNB")),
        ],
        ("scaler-pca", "linear", False): [
            # exact: moments; the R factor of a TSQR of the centred X
            (
                "daskfuse-scaler",
                "scaler",
                "FusedTransformer(StandardScaler), exact",
                fused("FusedTransformer", scaler, "exact"),
            ),
            ("sklearn-scaler", "scaler", "StandardScaler, one process", scaler),
            (
                "daskml-scaler",
                "scaler",
                "StandardScaler",
                est("dask_ml.preprocessing.StandardScaler"),
            ),
            (
                "daskfuse-pca",
                "pca",
                f"FusedTransformer(PCA({nc})), exact",
                fused("FusedTransformer", pca, "exact"),
            ),
            (
                "sklearn-pca",
                "pca",
                f"PCA({nc}, svd_solver='full'), one process",
                est("sklearn.decomposition.PCA", n_components=nc, svd_solver="full"),
            ),
            (
                "daskml-pca",
                "pca",
                f"PCA({nc}) (default svd_solver='auto')",
                est("dask_ml.decomposition.PCA", n_components=nc),
            ),
            (
                "daskml-pca-tsqr",
                "pca",
                f"PCA({nc}, svd_solver='tsqr')",
                est("dask_ml.decomposition.PCA", n_components=nc, svd_solver="tsqr"),
            ),
        ],
        ("kmeans", "blobs", False): [
            # weighted reclustering of the partitions' centroids
            (
                "daskfuse-kmeans",
                "kmeans",
                f"FusedClusterer(KMeans({k})), recluster",
                fused("FusedClusterer", kmeans, "recluster", random_state=0),
            ),
            (
                "sklearn-kmeans",
                "kmeans",
                f"KMeans({k}) (n_init='auto': 1 k-means++ run), one process",
                kmeans,
            ),
            (
                "sklearn-kmeans-n_init10",
                "kmeans",
                f"KMeans({k}, n_init=10), one process",
                est("sklearn.cluster.KMeans", n_clusters=k, n_init=10, random_state=0),
            ),
            (
                "daskml-kmeans",
                "kmeans",
                f"KMeans({k}) (default init='k-means||')" + quick_note(DASKML_QUICK["kmeans"]),
                est("dask_ml.cluster.KMeans", n_clusters=k, random_state=0, **quick("kmeans")),
            ),
        ],
        ("rf", "rf", True): [
            # tree union: one forest holding every partition's trees
            (
                "daskfuse-rf",
                "rf",
                f"FusedClassifier(RandomForestClassifier({t} / partitions)), trees",
                fused("FusedClassifier", rf_per_partition, "trees", random_state=0),
            ),
            ("sklearn-rf-jobs1", "rf", f"RandomForestClassifier({t}, n_jobs=1), one process", rf),
            (
                "sklearn-rf-jobs2",
                "rf",
                f"RandomForestClassifier({t}, n_jobs=2), one process",
                lambda ds: rf(ds).set_params(n_jobs=2),
            ),
        ],
        ("svc", "svc", True): [
            # ensembles of the partitions' models
            (
                "daskfuse-svc-vote",
                "svc",
                "FusedClassifier(SVC()), vote",
                fused("FusedClassifier", svc, "vote"),
            ),
            (
                "daskfuse-svc-stack",
                "svc",
                "FusedClassifier(SVC()), stack",
                fused("FusedClassifier", svc, "stack"),
            ),
            ("sklearn-svc", "svc", "SVC() (RBF kernel), one process", svc),
        ],
        ("mlp", "mlp", True): [
            # weighted parameter averaging from a shared initialisation
            (
                "daskfuse-mlp",
                "mlp",
                f"FusedClassifier(MLPClassifier(({h},))), weighted",
                fused("FusedClassifier", mlp, "weighted", random_state=0),
            ),
            ("sklearn-mlp", "mlp", f"MLPClassifier(({h},)), one process", mlp),
        ],
    }
    cases = []
    for (family, dataset, supervised), rows in spec.items():
        for key, group, label, make in rows:
            library = LIBRARIES[key.split("-")[0]]
            ref = REFERENCES.get(group, f"sklearn-{group}")
            cases.append(
                Case(
                    key,
                    family,
                    group,
                    label,
                    library,
                    "numpy" if library == "scikit-learn" else "dask",
                    dataset,
                    make,
                    supervised=supervised,
                    reference=None if key == ref else ref,
                    slow=key in SLOW_CASES,
                )
            )
    return cases


def select(cases: list[Case], only: list[str] | None) -> list[Case]:
    """The cases that ``--only`` names (family names or numbers 1-7, or case keys)."""
    if not only:
        return cases
    wanted = set()
    for item in only:
        if item.isdigit() and 1 <= int(item) <= len(FAMILIES):
            wanted.add(FAMILIES[int(item) - 1])
        else:
            wanted.add(item)
    unknown = wanted - set(FAMILIES) - {c.key for c in cases}
    if unknown:
        raise SystemExit(f"--only: unknown families or keys {sorted(unknown)}")
    return [c for c in cases if c.family in wanted or c.key in wanted]


# ------------------------------------------------------------------------- fitting


def materialize(model: Any) -> list[str]:
    """Compute fitted attributes that are lazy dask collections (except ``labels_``).

    dask-ml's ``GaussianNB.fit`` only builds the graph of ``theta_`` etc.; left lazy,
    every later ``predict`` recomputes the fit. Returns the names computed.
    """
    lazy = {
        k: v
        for k, v in vars(model).items()
        if k.endswith("_") and k != "labels_" and dask.is_dask_collection(v)
    }
    if lazy:
        for k, v in zip(lazy, dask.compute(*lazy.values())):
            setattr(model, k, v)
    return sorted(lazy)


def fit_case(case: Case, ds: dict[str, Any], repeats: int, client: Any, baseline: int):
    """Fit ``case`` ``repeats`` times on fresh clones; return (last model, timing record).

    Computing lazily fitted attributes (:func:`materialize`) is part of the timed fit.
    """
    X, y = (ds["X_np"], ds["y_np"]) if case.on == "numpy" else (ds["X"], ds["y"])
    fit_args = (X, y) if case.supervised else (X,)
    template = case.make(ds)
    model, times = common.time_fits(
        template, fit_args, repeats, client, baseline, finish=materialize
    )
    rec: dict[str, Any] = {
        "fit_seconds": times.seconds,
        "estimator": repr(template)[:300],
        "memory": times.memory,
    }
    if times.tasks_left:
        rec["tasks_left_before_fit"] = times.tasks_left
    if times.unfinished_seconds:
        rec["lazy_fit_seconds"] = times.unfinished_seconds
        rec["lazy_attributes"] = times.finished
    if times.returned_none:
        rec["fit_returned_none"] = True
    rec["fit_seconds_median"] = times.median
    if times.warnings:
        rec["warnings"] = sorted(set(times.warnings))
    if hasattr(model, "partition_report_"):
        rec.update(common.daskfuse_breakdown(model, times.median, common.slots(client)))
    if times.partition_seconds:
        rec["partition_task_seconds_all_fits"] = sum(t for t, _ in times.partition_seconds)
        rec["partition_fit_seconds_all_fits"] = sum(f for _, f in times.partition_seconds)
        rec["fits"] = len(times.partition_seconds)
    return model, rec


def task_over_fit(r: dict[str, Any]) -> float | None:
    """Partition task seconds / the estimators' fit seconds (daskfuse rows that fit),
    summed over every fit of the case (a few milliseconds of noise per task weigh on
    one fit of small partitions), or over the last fit in older results."""
    fit = r.get("partition_fit_seconds_all_fits", r.get("partition_fit_seconds_sum"))
    task = r.get("partition_task_seconds_all_fits", r.get("partition_task_seconds_sum"))
    return task / fit if fit else None


def _task_detail(r: dict[str, Any]) -> str:
    if "partition_task_seconds_all_fits" in r:
        return (
            f"sum of task s {r['partition_task_seconds_all_fits']:.2f} vs fit s "
            f"{r['partition_fit_seconds_all_fits']:.2f} over the {r['partitions']} "
            f"partitions of all {r['fits']} fits (the last fit alone: "
            f"{r['partition_task_seconds_sum'] / r['partition_fit_seconds_sum']:.2f})"
        )
    return (
        f"sum of task s {r['partition_task_seconds_sum']:.2f} vs fit s "
        f"{r['partition_fit_seconds_sum']:.2f} over the {r['partitions']} "
        "partitions of the last fit"
    )


#: issue 17: a partition task costs at most this many times its estimator's fit
TASK_OVER_FIT = 1.1


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17: task s / fit s of every daskfuse case that fits partition models."""
    out = []
    cases = [r for r in results if r["library"] == "daskfuse" and task_over_fit(r) is not None]
    for i, r in enumerate(cases):
        out.append(
            common.target(
                "17",
                f"17{chr(ord('a') + i)}",
                f"partition task seconds / fit seconds, {r['label']}",
                task_over_fit(r),
                "<=",
                TASK_OVER_FIT,
                digits=2,
                detail=_task_detail(r),
            )
        )
    return out


# ---------------------------------------------------------------------- evaluation


def _np(value: Any) -> np.ndarray:
    """A NumPy array from an array, a dask collection or a ``Delayed``."""
    if dask.is_dask_collection(value):
        value = dask.compute(value)[0]
    return np.asarray(value)


def _inner(model: Any) -> Any:
    """The plain scikit-learn model: daskfuse's fused estimator, else the model itself."""
    return getattr(model, "fused_estimator_", model)


def _max_rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)))


def _max_abs(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))


def _predict(model: Any, case: Case, ds: dict[str, Any]) -> tuple[np.ndarray, float]:
    """Predictions on the held-out set and the seconds they took (not part of the fit)."""
    t0 = time.perf_counter()
    if case.library == "dask-ml":
        pred = _np(model.predict(ds["X_test"]))
    else:  # scikit-learn, and daskfuse on NumPy (its fused model is plain scikit-learn)
        pred = np.asarray(model.predict(ds["X_test_np"]))
    return pred.ravel(), time.perf_counter() - t0


def evaluate(case: Case, model: Any, ref: Any, ds: dict[str, Any]) -> dict[str, Any]:
    """Quality (held-out) and fidelity to the scikit-learn reference ``ref`` (may be None)."""
    m = _inner(model)
    r = None if ref is None else _inner(ref)
    out: dict[str, Any] = {}
    g = case.group
    if g in ("linreg", "ridge"):
        pred, out["predict_seconds"] = _predict(model, case, ds)
        y = ds["y_test_np"]
        out["r2"] = float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))
        out["coef_max_abs_diff_vs_truth"] = _max_abs(_np(m.coef_), ds["params"]["coef"])
        if r is not None:
            out["coef_max_rel_diff"] = _max_rel(_np(m.coef_), r.coef_)
            out["intercept_abs_diff"] = abs(float(_np(m.intercept_)) - float(r.intercept_))
    elif g in ("gnb", "rf", "svc", "mlp"):
        pred, out["predict_seconds"] = _predict(model, case, ds)
        out["accuracy"] = float(np.mean(pred == ds["y_test_np"]))
        if g == "gnb" and r is not None:
            var = getattr(m, "var_", None)
            if var is None:  # dask-ml names it sigma_ (as scikit-learn < 1.0 did)
                var = m.sigma_
                out["variance_attribute"] = "sigma_ (no var_smoothing epsilon added)"
            out["theta_max_abs_diff"] = _max_abs(_np(m.theta_), r.theta_)
            out["var_max_rel_diff"] = _max_rel(_np(var), r.var_)
            prior = _np(m.class_prior_)
            out["class_prior_shape"] = list(prior.shape)
            out["class_prior_max_abs_diff"] = _max_abs(prior, r.class_prior_)
        elif g == "rf":
            out["n_trees"] = len(m.estimators_)
        elif g == "svc":
            members = getattr(m, "estimators_", None) or [m]
            out["n_support_vectors"] = int(sum(int(np.sum(e.n_support_)) for e in members))
            out["members"] = len(members)
        elif g == "mlp":
            out["n_iter"] = int(getattr(m, "n_iter_", -1))
    elif g == "scaler":
        out["mean_max_abs_diff_vs_truth"] = _max_abs(_np(m.mean_), ds["params"]["mu"])
        if r is not None:
            out["mean_max_abs_diff"] = _max_abs(_np(m.mean_), r.mean_)
            out["scale_max_rel_diff"] = _max_rel(_np(m.scale_), r.scale_)
    elif g == "pca":
        evr = _np(m.explained_variance_ratio_)
        out["evr_sum"] = float(np.sum(evr))
        if r is not None:
            out["evr_max_abs_diff"] = _max_abs(evr, r.explained_variance_ratio_)
            cos = np.abs(np.sum(_np(m.components_) * r.components_, axis=1))
            out["component_max_deviation"] = float(np.max(1 - cos))  # 1 - |cos angle|
    elif g == "kmeans":
        from sklearn.metrics import adjusted_rand_score, pairwise_distances_argmin_min

        centers = _np(m.cluster_centers_)
        labels, dist = pairwise_distances_argmin_min(ds["X_np"], centers)
        out["inertia"] = float(np.sum(dist**2))
        out["ari_vs_true_blobs"] = float(adjusted_rand_score(ds["y_np"], labels))
        if r is not None:
            _, rdist = pairwise_distances_argmin_min(ds["X_np"], _np(r.cluster_centers_))
            out["inertia_ratio"] = out["inertia"] / float(np.sum(rdist**2))
    if case.library == "daskfuse":
        out["n_partitions"] = int(model.n_partitions_)
        out["fusion_used"] = repr(model.fusion_)
    return out


def run_family(
    cases: list[Case],
    all_cases: dict[str, Case],
    data: dict[str, Any],
    repeats: tuple[int, int],
    client: Any,
    baseline: int,
) -> list[dict[str, Any]]:
    """Fit (timed) and then evaluate (untimed) every case of one family.

    ``all_cases`` (every case by key) supplies a reference that ``--only`` left out;
    it is then fitted once, untimed, for the fidelity columns. ``repeats`` is
    ``(--repeats, --slow-repeats)``.
    """
    models: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    for case in cases:
        ds = data[case.dataset]
        res = common.new_result(
            case,
            ds,
            head={"family": case.family, "group": case.group},
            tail={"reference": case.reference},
        )
        if case.library == "daskfuse":
            try:
                by_name = isinstance(case.make(ds).fusion, str)
                res["fusion_selected_by"] = "name" if by_name else "class (not in FUSERS)"
            except Exception as exc:  # reported again, with its traceback, by the fit
                res["fusion_selected_by"] = f"{type(exc).__name__}: {exc}"
        n = min(repeats) if case.slow else repeats[0]
        print(f"-> {case.key} [{case.dataset}] x{n} ...", end=" ", flush=True)
        try:
            model, rec = fit_case(case, ds, n, client, baseline)
            res.update(rec)
            models[case.key] = model
            print(f"{rec['fit_seconds_median']:.2f} s", end="", flush=True)
        except Exception as exc:  # a failing case must not stop the run
            res.update(common.error_fields(exc))
            print(f"ERROR {res['error'][:200]}", flush=True)
        else:
            print(flush=True)
        results[case.key] = res

    # untimed: quality and fidelity; a missing reference is fitted here, untimed
    for case in cases:
        res = results[case.key]
        if res["status"] != "ok":
            continue
        ref = None
        if case.reference and case.group in FIDELITY_GROUPS:
            ref = models.get(case.reference)
            if ref is None and case.reference not in results:
                ref_case = all_cases[case.reference]
                try:
                    ref = _fit_untimed(ref_case, data[ref_case.dataset])
                    models[case.reference] = ref
                except Exception as exc:
                    res["reference_error"] = f"{type(exc).__name__}: {exc}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res["metrics"] = evaluate(case, models[case.key], ref, data[case.dataset])
        except Exception as exc:
            res["metrics_error"] = f"{type(exc).__name__}: {exc}"
            res["metrics_traceback"] = traceback.format_exc(limit=8)
    add_ratios(list(results.values()))
    return list(results.values())


def _fit_untimed(case: Case, ds: dict[str, Any]) -> Any:
    X, y = (ds["X_np"], ds["y_np"]) if case.on == "numpy" else (ds["X"], ds["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = case.make(ds)
        est.fit(X, y) if case.supervised else est.fit(X)
    return est


def add_ratios(results: list[dict[str, Any]]) -> None:
    """``anchor_seconds / daskfuse_seconds`` for every anchor and daskfuse case of a group."""
    fused = [r for r in results if r["library"] == "daskfuse" and r["status"] == "ok"]
    for r in results:
        if r["library"] == "daskfuse" or r["status"] != "ok":
            continue
        r["ratios"] = {
            f"vs_{f['key']}": r["fit_seconds_median"] / f["fit_seconds_median"]
            for f in fused
            if f["group"] == r["group"] and f["fit_seconds_median"] > 0
        }


# -------------------------------------------------------------------------- output

#: per family: (header, metric key, format)
METRIC_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "linear": [
        ("held-out R²", "r2", ".6f"),
        ("max rel. coef diff vs scikit-learn", "coef_max_rel_diff", ".1e"),
        ("abs intercept diff", "intercept_abs_diff", ".1e"),
    ],
    "nb": [
        ("accuracy", "accuracy", ".4f"),
        ("max abs theta diff", "theta_max_abs_diff", ".1e"),
        ("max rel. var diff", "var_max_rel_diff", ".1e"),
        ("max prior diff", "class_prior_max_abs_diff", ".1e"),
    ],
    "scaler-pca": [
        ("max mean diff", "mean_max_abs_diff", ".1e"),
        ("max rel. scale diff", "scale_max_rel_diff", ".1e"),
        ("EVR sum", "evr_sum", ".6f"),
        ("max EVR diff", "evr_max_abs_diff", ".1e"),
        ("max 1-abs(cos) component", "component_max_deviation", ".1e"),
    ],
    "kmeans": [
        ("inertia (all rows)", "inertia", ",.0f"),
        ("inertia / sklearn KMeans", "inertia_ratio", ".4f"),
        ("ARI vs true blobs", "ari_vs_true_blobs", ".4f"),
    ],
    "rf": [("accuracy", "accuracy", ".4f"), ("trees", "n_trees", "d")],
    "svc": [
        ("accuracy", "accuracy", ".4f"),
        ("support vectors", "n_support_vectors", ",d"),
        ("predict s (test, untimed)", "predict_seconds", ".2f"),
    ],
    "mlp": [("accuracy", "accuracy", ".4f"), ("epochs (n_iter_)", "n_iter", "d")],
}
FAMILY_TITLES = {
    "linear": "1. Linear least squares (exact)",
    "nb": "2. Gaussian naive Bayes (exact)",
    "scaler-pca": "3. StandardScaler and PCA (exact)",
    "kmeans": "4. k-means (centroid reclustering)",
    "rf": "5. Random forest (tree union)",
    "svc": "6. RBF SVC (vote, stack)",
    "mlp": "7. MLP (weighted averaging from a shared initialisation)",
}


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "—"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _ratio_cell(r: dict[str, Any]) -> str:
    ratios = r.get("ratios") or {}
    if not ratios:
        return "—"
    if len(ratios) == 1:
        return common.fmt(next(iter(ratios.values())))
    return "; ".join(f"{k.rsplit('-', 1)[-1]} {common.fmt(v)}" for k, v in ratios.items())


def markdown_table(family: str, results: list[dict[str, Any]]) -> str:
    """One family's results as a markdown table (its own metric columns)."""
    cols = METRIC_COLUMNS[family]
    head = (
        list(common.CASE_COLUMNS)
        + [c[0] for c in cols]
        + ["peak MiB", "rise MiB", "anchor s / daskfuse s", "task s / fit s", "note"]
    )
    lines = common.md_head(head)
    for r in results:
        metrics = r.get("metrics", {})
        notes = []
        if r["status"] != "ok":
            notes.append(r.get("error", ""))
        if r.get("metrics_error"):
            notes.append("metrics: " + r["metrics_error"])
        if r.get("lazy_attributes"):
            notes.append(
                "fit() left " + ", ".join(r["lazy_attributes"]) + " lazy; computing them is "
                f"timed (lazy fit() alone {common.fmt(statistics.median(r['lazy_fit_seconds']))} s)"
            )
        if r.get("fit_returned_none"):
            notes.append("fit() returned None")
        if metrics.get("variance_attribute"):
            notes.append("variance from " + metrics["variance_attribute"])
        if r["library"] == "daskfuse" and r.get("fusion_selected_by", "name") != "name":
            notes.append(f"fusion by class: {metrics.get('fusion_used', '?')}")
        if any("ConvergenceWarning" in w for w in r.get("warnings", [])):
            notes.append("ConvergenceWarning")
        note = "; ".join(n for n in notes if n)
        row = [
            *common.case_cells(r, metrics.get("n_partitions", r["partitions"])),
            *[_cell(metrics.get(key), spec) for _, key, spec in cols],
            *common.memory_cells(r.get("memory"), r["fit_on"]),
            _ratio_cell(r),
            _cell(task_over_fit(r), ".2f"),
            common.md_cell(note, 240),
        ]
        lines.append(common.md_row(row))
    return "\n".join(lines)


def markdown_report(payload: dict[str, Any]) -> str:
    """Header with parameters, machine and data sets, then one table per family."""
    p = payload["parameters"]
    slow_keys = [r["key"] for r in payload["results"] if r["key"] in p["slow_cases"]]
    n_slow = min(p["repeats"], p["slow_repeats"])
    slow = f" ({', '.join(slow_keys)}: {n_slow})" if slow_keys and n_slow < p["repeats"] else ""
    lines = [
        *common.report_head(
            payload,
            "Model-family benchmark",
            cluster_suffix=slow,
            notes=[
                "- fusers registered by name: " + ", ".join(p["fusers_registered"]),
                common.MEMORY_LINE,
            ],
            ratio_note=" Fidelity columns compare with the scikit-learn fit of the same model "
            "(`max rel.` = max over entries of abs(a - b) / abs(b)).",
        ),
        "",
        *common.md_head(
            ["data set", "generator", "rows x features", "partitions", "held-out rows"]
        ),
    ]
    for name, d in p["datasets"].items():
        lines.append(
            f"| {name} | {d['generator']} | {d['rows']:,} x {d['features']} | "
            f"{d['partitions']} | {d['test_rows']:,} |"
        )
    by_family: dict[str, list[dict[str, Any]]] = {}
    for r in payload["results"]:
        by_family.setdefault(r["family"], []).append(r)
    for fam in FAMILIES:
        if fam in by_family:
            lines += ["", f"## {FAMILY_TITLES[fam]}", "", markdown_table(fam, by_family[fam])]
    if payload.get("targets"):
        lines += [
            "",
            "## Targets (issue 17: partition task seconds / fit seconds)",
            "",
            common.targets_table(payload["targets"]),
        ]
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def _key_value(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    if name not in DATASETS or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(
            f"expected DATASET=N with DATASET in {', '.join(DATASETS)}; got {text!r}"
        )
    return name, int(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, 1 repeat")
    parser.add_argument("--repeats", type=int, help="fits per case, median reported (default 3)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"families ({', '.join(FAMILIES)}, or 1-7) or case keys",
    )
    parser.add_argument(
        "--rows",
        type=_key_value,
        action="append",
        default=[],
        metavar="DATASET=N",
        help=f"training rows of a data set ({', '.join(DATASETS)})",
    )
    parser.add_argument(
        "--chunk",
        type=_key_value,
        action="append",
        default=[],
        metavar="DATASET=N",
        help="rows per chunk (= per daskfuse partition) of a data set",
    )
    parser.add_argument(
        "--slow-repeats",
        type=int,
        default=1,
        help=f"at most this many fits for the slow cases ({', '.join(sorted(SLOW_CASES))})",
    )
    parser.add_argument("--rf-trees", type=int, default=100, help="trees in all (forest case)")
    parser.add_argument("--mlp-hidden", type=int, default=32, help="MLP hidden units")
    parser.add_argument("--mlp-max-iter", type=int, default=30, help="MLP max_iter (epochs)")
    common.add_run_args(parser)
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON output; the .md goes next to it (default benchmarks/results/families.json, "
        "or families_quick.json with --quick)",
    )
    args = parser.parse_args(argv)
    common.complete_args(args, "families", {"repeats": 3}, {"repeats": 1})
    common.check_positive(
        parser, (args.repeats, args.slow_repeats), "--repeats and --slow-repeats must be positive"
    )
    sizes = {}
    for name, (gen, feats, rows, chunk, test) in DATASETS.items():
        if args.quick:
            rows, chunk, test = QUICK_SIZES[name]
        sizes[name] = {
            "generator": gen,
            "features": feats,
            "rows": rows,
            "chunk": chunk,
            "test_rows": test,
        }
    for name, n in args.rows:
        sizes[name]["rows"] = n
    for name, n in args.chunk:
        sizes[name]["chunk"] = n
    for s in sizes.values():
        s["chunk"] = min(s["chunk"], s["rows"])
        s["partitions"] = math.ceil(s["rows"] / s["chunk"])
    args.sizes = sizes
    return args


def prepare(name: str, spec: dict[str, Any], seed: int, client: Any) -> dict[str, Any]:
    """Generate, persist and gather one data set and its held-out rows."""
    index = list(DATASETS).index(name)
    gen, n_features = spec["generator"], spec["features"]
    params = make_params(gen, n_features, seed)

    def persisted(rows: int, chunk: int, part: int) -> tuple[Any, Any, Any, Any]:
        block = functools.partial(
            _block,
            generator=gen,
            params=params,
            n_features=n_features,
            seed_key=[seed, index, part],
        )
        # y is float64 for the linear data and int64 otherwise
        y_dtype = None if gen == "linear" else np.int64
        return common.persist_and_gather(
            client, *common.make_dask_data(block, rows, n_features, chunk, y_dtype)
        )

    ds: dict[str, Any] = {"rows": spec["rows"], "params": params}
    X, y, ds["X_np"], ds["y_np"] = persisted(spec["rows"], spec["chunk"], 0)
    ds.update(X=X, y=y, partitions=X.numblocks[0])
    if spec["test_rows"]:
        test = persisted(spec["test_rows"], min(spec["chunk"], spec["test_rows"]), 1)
        ds.update(zip(("X_test", "y_test", "X_test_np", "y_test_np"), test))
    return ds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    all_cases = {c.key: c for c in build_cases(args)}
    cases = select(list(all_cases.values()), args.only)
    if args.list:
        for c in cases:
            print(f"{c.family:11s} {c.key:24s} {c.library:13s} {c.label}")
        return 0
    import daskfuse.fusion

    t_start = time.perf_counter()
    needed = sorted(
        {c.dataset for c in cases} | {all_cases[c.reference].dataset for c in cases if c.reference},
        key=list(DATASETS).index,
    )
    results: list[dict[str, Any]] = []
    with common.local_cluster(args.workers, args.threads, WARM_MODULES) as client:
        data = {}
        for name in needed:
            t0 = time.perf_counter()
            data[name] = prepare(name, args.sizes[name], args.seed, client)
            s = args.sizes[name]
            print(
                f"data {name}: {s['rows']:,} x {s['features']} in "
                f"{data[name]['partitions']} partitions, test {s['test_rows']:,} rows "
                f"(prepared in {time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
        print(common.DATA_NOTE, flush=True)
        baseline = common.settle(client)
        machine = common.machine_info(client)
        for fam in FAMILIES:
            fam_cases = [c for c in cases if c.family == fam]
            if fam_cases:
                print(f"== {FAMILY_TITLES[fam]}", flush=True)
                results += run_family(
                    fam_cases, all_cases, data, (args.repeats, args.slow_repeats), client, baseline
                )

    parameters = {
        "quick": args.quick,
        "repeats": args.repeats,
        "slow_repeats": args.slow_repeats,
        "slow_cases": sorted(SLOW_CASES),
        "workers": args.workers,
        "threads": args.threads,
        "seed": args.seed,
        "only": args.only,
        "rf_trees": args.rf_trees,
        "mlp_hidden": args.mlp_hidden,
        "mlp_max_iter": args.mlp_max_iter,
        "fusers_registered": sorted(daskfuse.fusion.FUSERS),
        "datasets": {
            n: {**{k: v for k, v in args.sizes[n].items()}, "partitions": data[n]["partitions"]}
            for n in needed
        },
        "baseline_scheduler_tasks": baseline,
    }
    common.write_run(
        args.out,
        "families",
        t_start,
        parameters,
        machine,
        results,
        markdown_report,
        json_default=str,
        targets=targets(results),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
