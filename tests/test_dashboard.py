"""What the dashboard shows: fit, combine and finalize as distinct task groups.

The dashboard's task-group views read the scheduler's ``task_groups`` (named after
a tuple key's first element) and its task stream and prefix views read the task
prefixes (``dask.utils.key_split``). Task groups are dropped once all their tasks
are forgotten, so they are read while the result is held; the task stream and the
prefixes' running state counts record a whole ``fit``.
"""

from __future__ import annotations

from collections import Counter

import dask.array as da
import pytest
from dask.utils import key_split
from distributed import get_task_stream
from distributed.utils import key_split_group
from sklearn.linear_model import LogisticRegression

from daskfuse import FusedClassifier

STEPS = ("fit", "combine", "finalize")


def _groups(dask_scheduler, token):
    return {
        name: {"tasks": len(tg), "prefix": tg.prefix.name}
        for name, tg in dask_scheduler.task_groups.items()
        if name.endswith(token)
    }


def _memory_counts(dask_scheduler):
    """Per task prefix: how many of its tasks ever reached memory."""
    return {name: tp.state_counts["memory"] for name, tp in dask_scheduler.task_prefixes.items()}


@pytest.fixture
def fit_setup(binary_data):
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(500, -1)), da.from_array(y, chunks=500)
    clf = FusedClassifier(LogisticRegression(), split_every=3, random_state=0)
    graph = clf.fit_graph(Xd, yd)
    finalize = graph.key
    token = finalize[0].rsplit("-", 1)[1]
    names = {step: f"daskfuse-{step}-{token}" for step in STEPS}
    assert finalize == (names["finalize"], 0)
    return clf, Xd, yd, graph, names


def test_fit_shows_three_task_groups_in_the_task_stream(on_cluster, fit_setup):
    clf, Xd, yd, _, names = fit_setup
    with get_task_stream(client=on_cluster) as stream:
        clf.fit(Xd, yd)
    assert clf.n_partitions_ == 8
    ours = [rec["key"] for rec in stream.data if key_split_group(rec["key"]) in names.values()]
    counts = Counter(key_split_group(key) for key in ours)
    # 8 leaves; fan-in 3: 3 combines on level 1, 1 on level 2; one root
    assert counts == {names["fit"]: 8, names["combine"]: 3 + 1, names["finalize"]: 1}
    combines = sorted(k[1:] for k in ours if key_split_group(k) == names["combine"])
    assert combines == [(1, 0), (1, 1), (1, 2), (2, 0)]
    assert sorted(k[1] for k in ours if key_split_group(k) == names["fit"]) == list(range(8))
    # the workers that ran the fit tasks are the ones the report names
    fits = [rec for rec in stream.data if key_split_group(rec["key"]) == names["fit"]]
    assert {rec["worker"] for rec in fits} == set(clf.partition_report_["worker"])


def test_scheduler_task_groups_and_prefixes(on_cluster, fit_setup):
    _, _, _, graph, names = fit_setup
    future = on_cluster.compute(graph)
    try:
        model, reports = future.result()
        assert len(reports) == 8
        # held result: the finished fit/combine tasks stay known (released), so do
        # their groups, as on the dashboard's task-group views
        groups = on_cluster.run_on_scheduler(_groups, token=names["fit"].rsplit("-", 1)[1])
    finally:
        future.release()
    assert {name: g["tasks"] for name, g in groups.items()} == {
        names["fit"]: 8,
        names["combine"]: 4,
        names["finalize"]: 1,
    }
    assert groups[names["fit"]]["prefix"] == "daskfuse-fit"
    assert groups[names["combine"]]["prefix"] == "daskfuse-combine"
    # dask's key_split drops an 8-letter word starting with a-f as if it were a hex
    # token, so "daskfuse-finalize-<token>" has the prefix "daskfuse"; the task group
    # keeps the full name (above)
    finalize_prefix = key_split(graph.key)
    assert finalize_prefix in ("daskfuse", "daskfuse-finalize")
    assert groups[names["finalize"]]["prefix"] == finalize_prefix


def test_fit_counts_in_the_task_prefixes(on_cluster, fit_setup):
    clf, Xd, yd, graph, _ = fit_setup
    finalize_prefix = key_split(graph.key)
    before = on_cluster.run_on_scheduler(_memory_counts)
    clf.fit(Xd, yd)
    after = on_cluster.run_on_scheduler(_memory_counts)
    assert {"daskfuse-fit", "daskfuse-combine", finalize_prefix} <= set(after)

    def delta(prefix):
        return after[prefix] - before.get(prefix, 0)

    assert delta("daskfuse-fit") == 8
    assert delta("daskfuse-combine") == 3 + 1
    assert delta(finalize_prefix) == 1
