"""Memory: fit data several times larger than the cluster's memory, block by block."""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np
import pytest
from dask.utils import parse_bytes
from distributed import Client, LocalCluster
from numpy.testing import assert_allclose
from sklearn.linear_model import LinearRegression

from daskfuse import FusedRegressor

#: per worker; a worker that has imported daskfuse (scikit-learn, pandas, dask) holds
#: about 240 MiB before it computes anything
MEMORY_LIMIT = "400MiB"
N_WORKERS = 2


# 2.4 GiB generated and fitted: about 75 CPU-seconds, too long for the default run
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fit_data_three_times_the_cluster_memory():
    limit = N_WORKERS * parse_bytes(MEMORY_LIMIT)
    n_features, block_rows = 4, 2**17  # blocks of 4 MiB
    n_blocks = -(-3 * limit // (block_rows * (n_features + 1) * 8))
    coef = np.array([1.5, -2.0, 0.5, 3.0])
    # generated lazily, block by block, on the workers: the client never holds it
    X = da.random.default_rng(0).random(
        (n_blocks * block_rows, n_features), chunks=(block_rows, n_features)
    )
    y = X @ coef + 0.7
    assert X.nbytes + y.nbytes >= 3 * limit

    with (
        LocalCluster(
            n_workers=N_WORKERS,
            threads_per_worker=1,
            processes=True,
            memory_limit=MEMORY_LIMIT,
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
        dask.config.set(scheduler=client),
        client.as_current(),
    ):
        workers = set(client.scheduler_info()["workers"])
        pids = client.run(os.getpid)
        reg = FusedRegressor(LinearRegression(), fusion="exact", partition="chunks")
        reg.fit(X, y)

        # no worker was killed (by its nanny for memory, or otherwise) and restarted
        assert set(client.scheduler_info()["workers"]) == workers
        assert client.run(os.getpid) == pids
        assert len(cluster.workers) == N_WORKERS
        # and each of them fitted partitions
        report = reg.partition_report_
        assert set(report["worker"]) == workers
    assert report["rows"].sum() == len(X)
    assert reg.n_partitions_ == n_blocks
    assert_allclose(reg.fused_estimator_.coef_, coef, rtol=1e-9)
    assert_allclose(reg.fused_estimator_.intercept_, 0.7, rtol=1e-9)
