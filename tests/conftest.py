"""Shared fixtures: one real LocalCluster for the whole run, data sets per test."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="session")
def client():
    """A real two-worker LocalCluster (worker processes), shared by the whole run."""
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            # a random loopback port: 8787 may be taken on a shared machine, and
            # None still binds the scheduler's HTTP routes on 0.0.0.0:8787
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            memory_limit="2GiB",
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


@pytest.fixture(params=["sync", "threads", "distributed"])
def scheduler(request):
    """Run the test body on each scheduler; yields the scheduler's name."""
    name = request.param
    if name == "distributed":
        client = request.getfixturevalue("client")
        with dask.config.set(scheduler=client), client.as_current():
            yield name
    else:
        with dask.config.set(scheduler=name):
            yield name


@pytest.fixture
def on_cluster(client):
    """Make the shared cluster the active scheduler for the test."""
    with dask.config.set(scheduler=client), client.as_current():
        yield client


def make_classification_data(n=4000, n_features=6, n_classes=2, noise=0.5, seed=0):
    """Linearly separable classes with label noise from a logistic/softmax link."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    W = rng.normal(size=(n_features, n_classes)) * 2
    logits = X @ W + noise * rng.gumbel(size=(n, n_classes))
    y = logits.argmax(axis=1)
    return X, y


@pytest.fixture
def binary_data():
    return make_classification_data(n=4000, n_classes=2, seed=0)


@pytest.fixture
def multiclass_data():
    return make_classification_data(n=3000, n_classes=3, seed=1)


@pytest.fixture
def regression_data():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 5))
    y = X @ np.array([1.5, -2.0, 0.5, 0.0, 3.0]) + 0.7 + 0.3 * rng.normal(size=3000)
    return X, y


