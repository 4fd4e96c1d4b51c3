"""daskfuse on real clusters: ``dask scheduler``/``dask worker`` processes, dask-jobqueue.

Every process listens on 127.0.0.1 only and is stopped by the test that started it,
whatever happens in the test: each ``dask`` command runs in its own process group, is
sent SIGTERM, and its whole group (the nanny's worker process included) SIGKILL after a
timeout; the tests then assert that none of those processes is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import dask
import dask.array as da
import psutil
import pytest
from distributed import Client
from distributed.deploy.spec import ProcessInterface
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from daskfuse import FusedClassifier

HOST = "127.0.0.1"
# ``--no-dashboard`` still serves /health and /metrics, by default on 0.0.0.0
LOCAL_HTTP = [f"--dashboard-address={HOST}:0"]
STOP_TIMEOUT = 20  # seconds for a graceful stop before SIGKILL


# --------------------------------------------------------------------------- helpers
def _data():
    X, y = make_classification(
        n_samples=4000, n_features=6, n_informative=4, random_state=0
    )
    return X, y


def _fit(X, y):
    """The fit under test: a dask compute on whatever scheduler is active."""
    return FusedClassifier(
        LogisticRegression(), n_partitions=4, partition="random", random_state=0
    ).fit(X, y)


def _fit_both(X, y):
    """Fits on numpy input and on a dask array with 4 row chunks."""
    Xd = da.from_array(X, chunks=(len(X) // 4, -1))
    yd = da.from_array(y, chunks=len(y) // 4)
    assert Xd.numblocks == (4, 1)
    return {"numpy": _fit(X, y), "dask": _fit(Xd, yd)}


def _reference_fits(client, X, y):
    """The same fits on the session's LocalCluster (conftest's ``client``)."""
    with dask.config.set(scheduler=client), client.as_current():
        fits = _fit_both(X, y)
    session_workers = set(client.scheduler_info()["workers"])
    for model in fits.values():
        assert set(model.partition_report_["worker"]) <= session_workers
    return fits


def _assert_same_models(got, expected, workers):
    """Equal coefficients, and every partition fitted on one of ``workers`` (all used)."""
    for kind in ("numpy", "dask"):
        g, e = got[kind], expected[kind]
        assert_allclose(g.fused_estimator_.coef_, e.fused_estimator_.coef_, rtol=1e-12)
        assert_allclose(
            g.fused_estimator_.intercept_, e.fused_estimator_.intercept_, rtol=1e-12
        )
        assert list(g.classes_) == list(e.classes_)
        assert g.n_partitions_ == 4
        assert list(g.partition_report_["rows"]) == list(e.partition_report_["rows"])
        assert set(g.partition_report_["worker"]) == set(workers), (kind, g.partition_report_)


def _is_gone(proc):
    """True when ``proc`` (a psutil.Process) has exited (a zombie has exited)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(procs, timeout):
    deadline = time.monotonic() + timeout
    left = [p for p in procs if not _is_gone(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if not _is_gone(p)]
    return left


def _group_members(pgid):
    """Processes of the process group ``pgid`` that are still running."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and not _is_gone(proc):
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return members


def _assert_listening_on_localhost_only(procs):
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening = [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
        assert all(addr.ip == HOST for addr in listening), (proc, listening)


def _tree(pid):
    """``pid`` and all its descendants, as psutil.Process objects."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


# --------------------------------------------------------------------------- dask CLI
@dataclass
class _Started:
    name: str
    popen: subprocess.Popen
    log: str
    members: list = field(default_factory=list)  # the group's processes, for the check


@dataclass
class ExternalCluster:
    address: str
    workers: list  # worker addresses, as partition_report_ shows them
    worker_pids: dict  # worker address -> pid of its worker process


def _start(name, args, tmp_path):
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            start_new_session=True,  # its own group: killpg reaches the nanny's worker
        )
    return _Started(name, popen, str(log))


def _stop(started, timeout=STOP_TIMEOUT):
    """SIGTERM, wait, then SIGKILL the whole group; wait until none of it is left."""
    pgid = started.popen.pid  # start_new_session: group id == the leader's pid
    started.members = _tree(pgid) + _group_members(pgid)
    if started.popen.poll() is None:
        started.popen.send_signal(signal.SIGTERM)  # graceful: the nanny closes its worker
        try:
            started.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    if _group_members(pgid) or started.popen.poll() is None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    started.popen.wait(timeout=timeout)  # reaps the leader
    left = _wait_gone(started.members + _group_members(pgid), timeout)
    assert not left, f"{started.name}: processes left after SIGKILL: {left}"


def _read_scheduler_file(path, scheduler, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scheduler.popen.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {scheduler.popen.returncode}")
        try:
            with open(path) as f:
                return json.load(f)["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)
    raise TimeoutError(f"dask scheduler wrote no {path} in {timeout} s")


def _print_logs(started):
    for s in started:
        print(f"----- {s.name} (exit code {s.popen.returncode}) -----")
        try:
            with open(s.log, errors="replace") as f:
                print(f.read())
        except OSError as exc:
            print(f"(no log: {exc})")


@pytest.fixture
def external_cluster(request, tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

    Yields an :class:`ExternalCluster`. Whatever happens, the processes are stopped
    and checked to be gone; their output is printed when the test fails.
    """
    failed_before = request.session.testsfailed
    started = []
    client = None
    error = None
    try:
        sched_file = tmp_path / "scheduler.json"
        scheduler = _start(
            "scheduler",
            [
                "distributed.cli.dask_scheduler",
                "--host", HOST,
                "--port", "0",
                "--no-dashboard", *LOCAL_HTTP,
                "--scheduler-file", str(sched_file),
                # a safety net should this process be killed before its cleanup
                "--idle-timeout", "600s",
            ],
            tmp_path,
        )
        started.append(scheduler)
        address = _read_scheduler_file(sched_file, scheduler)
        assert address.startswith(f"tcp://{HOST}:"), address
        for i in range(2):
            started.append(
                _start(
                    f"worker-{i}",
                    [
                        "distributed.cli.dask_worker", address,
                        "--name", f"external-{i}",
                        "--nthreads", "1",
                        "--nworkers", "1",
                        "--no-dashboard", *LOCAL_HTTP,
                        "--host", HOST,
                        "--memory-limit", "1GiB",
                        "--local-directory", str(tmp_path / f"worker-{i}"),
                        "--death-timeout", "60",  # a safety net, as above
                    ],
                    tmp_path,
                )
            )
        client = Client(address, timeout="60s", set_as_default=False)
        client.wait_for_workers(2, timeout=60)
        worker_pids = client.run(os.getpid)
        assert len(worker_pids) == 2, worker_pids
        # the workers are the processes started here (each a child of its nanny)
        ours = [p for s in started[1:] for p in _tree(s.popen.pid)]
        assert set(worker_pids.values()) <= {p.pid for p in ours}, (worker_pids, ours)
        _assert_listening_on_localhost_only(ours + _tree(scheduler.popen.pid))
        yield ExternalCluster(address, sorted(worker_pids), worker_pids)
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            if client is not None:
                client.close(timeout=20)
        finally:
            # workers first (they would otherwise wait for the scheduler), then it
            errors = []
            for s in reversed(started):
                try:
                    _stop(s)
                except BaseException as exc:  # stop every process before failing
                    errors.append(exc)
            if error is not None or errors or request.session.testsfailed > failed_before:
                _print_logs(started)
            if errors:
                raise errors[0]


# --------------------------------------------------------------------------- jobqueue
def _jobqueue_cluster_class():
    from dask_jobqueue.local import LocalCluster, LocalJob

    class Job(LocalJob):
        """dask-jobqueue's LocalJob, whose ``close`` also marks the job closed.

        dask-jobqueue 0.9's ``Job.close`` kills the job but leaves its status
        ``running``, and distributed 2026.8's ``SpecCluster._close`` asserts that
        every job it created and that is still alive is closed: ``cluster.close()``
        raises ``AssertionError: Status.running`` whenever something still holds a
        job object (a traceback, a debugger, a list of ``cluster.workers``).
        Setting the status here keeps the test from depending on when jobs are freed.
        """

        async def close(self):
            try:
                await super().close()
            finally:
                await ProcessInterface.close(self)

    return LocalCluster, Job


# --------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def reference(client):
    """The fits on the session's LocalCluster that the real clusters must reproduce."""
    return _reference_fits(client, *_data())


@pytest.mark.timeout(180)
def test_dask_cli_cluster_fits_the_same_model_as_local_cluster(reference, external_cluster):
    X, y = _data()
    with Client(external_cluster.address) as c:  # the default scheduler in this block
        assert dask.config.get("scheduler") == "dask.distributed"
        got = _fit_both(X, y)
        assert set(c.scheduler_info()["workers"]) == set(external_cluster.workers)

    _assert_same_models(got, reference, external_cluster.workers)


def _job_processes(cluster):
    """``{pid: subprocess.Popen}`` of the jobs a dask-jobqueue LocalCluster started."""
    procs = {}
    for job in list(cluster.workers.values()):
        process = getattr(job, "process", None)  # set once the job was submitted
        if process is not None:
            procs[process.pid] = process.proc
    return procs


@pytest.mark.timeout(180)
def test_dask_jobqueue_cluster_fits_the_same_model_as_local_cluster(reference, tmp_path):
    JobqueueLocalCluster, Job = _jobqueue_cluster_class()
    X, y = _data()
    cluster = c = None
    jobs = {}  # pid -> Popen of each job (a ``dask worker`` process)
    job_procs = []  # the jobs' processes and their children (the nannies' workers)
    try:
        cluster = JobqueueLocalCluster(
            cores=1,
            processes=1,
            memory="1GiB",
            job_cls=Job,
            python=sys.executable,
            local_directory=str(tmp_path),
            death_timeout=60,
            scheduler_options={"host": HOST, "dashboard": False, "dashboard_address": f"{HOST}:0"},
            worker_extra_args=["--host", HOST, "--no-dashboard", *LOCAL_HTTP],
        )
        assert cluster.scheduler_address.startswith(f"tcp://{HOST}:")
        cluster.scale(jobs=2)
        c = Client(cluster)  # the default scheduler until closed
        c.wait_for_workers(2, timeout=60)

        jobs = _job_processes(cluster)
        assert len(jobs) == 2, cluster.workers
        job_procs = [p for pid in jobs for p in _tree(pid)]
        worker_pids = c.run(os.getpid)
        assert set(worker_pids.values()) <= {p.pid for p in job_procs}, (worker_pids, job_procs)
        _assert_listening_on_localhost_only(job_procs)

        got = _fit_both(X, y)
        _assert_same_models(got, reference, list(worker_pids))
    except BaseException:
        print(cluster.job_script() if cluster is not None else "(no cluster)")
        if c is not None and c.status == "running":
            for addr, logs in c.get_worker_logs().items():
                print(f"----- {addr} -----")
                print("\n".join(msg for _, msg in logs))
        raise
    finally:
        if cluster is not None:  # also jobs started before a failure
            for pid, popen in _job_processes(cluster).items():
                if pid not in jobs:
                    jobs[pid] = popen
                    job_procs += _tree(pid)
        try:
            if c is not None:
                c.close(timeout=20)
            if cluster is not None:
                cluster.close(timeout=60)
        finally:
            for popen in jobs.values():
                try:
                    popen.wait(timeout=STOP_TIMEOUT)  # reaps the job's process
                except subprocess.TimeoutExpired:
                    pass
            left = _wait_gone(job_procs, STOP_TIMEOUT)
            for proc in left:  # leave no process behind, even when failing
                proc.kill()
            for popen in jobs.values():
                popen.wait(timeout=STOP_TIMEOUT)
            assert not left, f"dask-jobqueue left job processes running: {left}"
