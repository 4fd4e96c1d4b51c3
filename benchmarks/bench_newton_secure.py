"""Secure(inner="newton") against newton, and newton's L-BFGS passes over many parameters.

Issue 15 (secure slice). Two side-by-side measurements, in one process with the
synchronous scheduler (the figures are ratios; the machine is shared, so the load
average is printed next to them):

``secure``
    ``FusedClassifier(LogisticRegression(tol=1e-10), n_partitions=8,
    partition="uniform")`` on 20,000 x 10 label-sorted rows of 3 classes, fitted with
    ``fusion="newton"`` and with ``fusion=Secure("newton")``: median seconds of 3 fits
    each, passes, and the largest coefficient difference relative to the largest
    coefficient.
``wide``
    the 600 x 2,000 sparse-ish binary problem of ``tests/test_newton.py`` (2,001
    parameters, above ``MAX_HESSIAN_PARAMS``) in 3 partitions: newton's L-BFGS passes
    (loss and gradient sums only) against shipping the Hessian sums
    (``MAX_HESSIAN_PARAMS`` raised for the run): seconds, passes, and the pickled size
    of one partition's pass summary.

Run: ``python benchmarks/bench_newton_secure.py`` (add ``--skip-hessian`` to leave out
the slow Hessian run).
"""

from __future__ import annotations

import pickle
import sys
import time
import warnings

import dask
import numpy as np
from sklearn.linear_model import LogisticRegression

import daskfuse.fusion.newton as newton
from daskfuse import FusedClassifier
from daskfuse.fusion import Secure
from tests.conftest import make_classification_data
from tests.test_newton import _wide_data

TIGHT = {"tol": 1e-10, "max_iter": 1000}


def _load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _fit(fusion, X, y, **kw):
    start = time.perf_counter()
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FusedClassifier(LogisticRegression(**TIGHT), fusion=fusion, **kw).fit(X, y)
    return time.perf_counter() - start, model


def secure_rows():
    X, y = make_classification_data(n=20000, n_features=10, n_classes=3, noise=3.0)
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    kw = dict(n_partitions=8, partition="uniform")
    times, models = {"newton": [], "secure": []}, {}
    for _ in range(3):
        for name, fusion in (("newton", "newton"), ("secure", Secure("newton"))):
            seconds, models[name] = _fit(fusion, X, y, **kw)
            times[name].append(seconds)
    a, b = models["newton"].fused_estimator_.coef_, models["secure"].fused_estimator_.coef_
    rows = [
        f"| {name} | {np.median(times[name]):.3f} | {len(models[name].history_)} |"
        for name in ("newton", "secure")
    ]
    ratio = np.median(times["secure"]) / np.median(times["newton"])
    diff = np.max(np.abs(a - b)) / np.max(np.abs(a))
    return rows, f"secure / newton: {ratio:.2f}x; coefficient difference {diff:.1e}"


def wide(with_hessian):
    X, y = _wide_data()
    caps = (newton.MAX_HESSIAN_PARAMS, 10**9) if with_hessian else (newton.MAX_HESSIAN_PARAMS,)
    rows, default = [], newton.MAX_HESSIAN_PARAMS
    part = np.ascontiguousarray(X[:200]), y[:200]
    try:
        for cap in caps:
            newton.MAX_HESSIAN_PARAMS = cap
            seconds, model = _fit("newton", X, y, n_partitions=3, random_state=0)
            state = newton._State(w=np.zeros(X.shape[1] + 1))
            summary = newton._pass_summary(LogisticRegression(), state, *part, np.array([0, 1]))
            size = len(pickle.dumps({k: v for k, v in summary.items() if k != "state"}))
            kind = "L-BFGS (gradient sums)" if cap == default else "Newton (Hessian sums)"
            rows.append(f"| {kind} | {seconds:.2f} | {len(model.history_)} | {size:,} |")
    finally:
        newton.MAX_HESSIAN_PARAMS = default
    return rows


def main():
    print(f"load average before: {_load()}\n")
    rows, note = secure_rows()
    print("| 20,000 x 10, 3 classes, label-sorted, 8 partitions | median s | passes |")
    print("|---|---|---|")
    print("\n".join(rows))
    print(f"\n{note} (load average after: {_load()})\n")
    print("| 600 x 2,000, 2,001 parameters, 3 partitions | s | passes | summary bytes |")
    print("|---|---|---|---|")
    print("\n".join(wide("--skip-hessian" not in sys.argv)))
    print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()
