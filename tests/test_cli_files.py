"""``daskfuse fit / predict / report`` on CSV and parquet files, as real processes."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge, SGDClassifier
from sklearn.preprocessing import FunctionTransformer

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor
from daskfuse.cli import main
from daskfuse.persist import load, save

TIMEOUT = 180
FEATURES = ["a", "b", "c", "d"]
SGD = "sklearn.linear_model.SGDClassifier"


def command(*args):
    return [sys.executable, "-m", "daskfuse", *map(str, args)]


def cli_env():
    # wide enough that no table row wraps, whatever the terminal of the test run
    return {**os.environ, "COLUMNS": "120"}


def run_cli(*args, timeout=TIMEOUT):
    """``python -m daskfuse ARGS``, stdout a pipe (not a terminal)."""
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=timeout, env=cli_env()
    )


def run_all(cases, env=None):
    """Run several ``python -m daskfuse`` commands at once: {name: (status, out, err)}.

    Most of a short command's time is starting Python and importing dask and
    scikit-learn; started together, the commands share that wait. ``env`` adds to
    the environment of the commands.
    """
    procs = {
        name: subprocess.Popen(
            command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**cli_env(), **(env or {})},
        )
        for name, args in cases.items()
    }
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=TIMEOUT)
        results[name] = (p.returncode, out, err)
    return results


def table_row(stdout, first):
    """The cells of the table row whose first cell is ``first``."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line)]
        cells = [c for c in cells if c]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no table row {first!r} in:\n{stdout}")


def one_error_line(stderr, command_name):
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"daskfuse {command_name}: error: "), stderr
    return lines[0]


# ------------------------------------------------------------------ data files
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A parquet directory of 4 part files, 3 CSVs for a glob, one CSV file."""
    root = tmp_path_factory.mktemp("cli-files")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 4))
    frame = pd.DataFrame(X, columns=FEATURES)
    frame["label"] = (X[:, 0] + X[:, 1] - 0.5 * X[:, 2] > 0).astype(int)
    (root / "pq").mkdir()
    for i in range(4):
        frame.iloc[i * 300 : (i + 1) * 300].to_parquet(root / "pq" / f"part-{i}.parquet")
    (root / "pq" / "_SUCCESS").write_text("")  # what Spark leaves: skipped

    reg = pd.DataFrame(rng.normal(size=(900, 3)), columns=["x1", "x2", "x3"])
    reg["value"] = reg.to_numpy() @ [1.5, -2.0, 0.5] + 0.7 + 0.1 * rng.normal(size=900)
    (root / "csv").mkdir()
    for i in range(3):
        reg.iloc[i * 300 : (i + 1) * 300].to_csv(root / "csv" / f"part-{i}.csv", index=False)

    blobs = np.concatenate([rng.normal(c, 0.3, size=(100, 2)) for c in (-3, 0, 3)])
    points = pd.DataFrame(blobs, columns=["u", "v"])
    points["id"] = np.arange(len(points))
    points.to_csv(root / "points.csv", index=False)
    (root / "notes.txt").write_text("not data")
    (root / "empty").mkdir()
    return {"root": root, "frame": frame, "reg": reg, "points": points}


@pytest.fixture(scope="module")
def parquet_fit(files):
    """``daskfuse fit`` of a parquet directory on its own LocalCluster (1 worker)."""
    root = files["root"]
    model, report = root / "sgd.skops", root / "sgd.json"
    proc = run_cli(
        "fit",
        root / "pq",
        "--target",
        "label",
        "--estimator",
        SGD,
        "--params",
        '{"random_state": 0}',
        "--fusion",
        "weighted",
        "--partitions",
        "6",
        "--workers",
        "1",
        "--out",
        model,
        "--report",
        report,
    )
    return proc, model, report


# ------------------------------------------------------------------ fit
def test_fit_parquet_directory_gives_the_in_process_model(parquet_fit, files):
    proc, model_path, _ = parquet_fit
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Starting a LocalCluster: 1 worker process(es)" in proc.stdout
    assert "no progress bar: stdout is not a terminal" in proc.stdout
    assert "\r" not in proc.stdout
    assert "Partition report (6 partitions)" in proc.stdout
    assert f"Model written to {model_path}" in proc.stdout

    loaded = load(model_path)
    frame = files["frame"]
    X, y = frame[FEATURES], frame["label"]
    here = FusedClassifier(SGDClassifier(random_state=0), fusion="weighted", n_partitions=6).fit(
        X, y
    )
    assert type(loaded) is FusedClassifier
    np.testing.assert_allclose(
        loaded.fused_estimator_.coef_, here.fused_estimator_.coef_, rtol=1e-12
    )
    np.testing.assert_array_equal(loaded.predict(X), here.predict(X))
    assert list(loaded.feature_names_in_) == FEATURES
    assert loaded.partition_report_["rows"].tolist() == [200] * 6


def test_fit_report_json_has_one_row_per_partition(parquet_fit):
    proc, model_path, report_path = parquet_fit
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert len(report["partitions"]) == report["n_partitions"] == 6
    assert [p["partition"] for p in report["partitions"]] == list(range(6))
    assert sum(p["rows"] for p in report["partitions"]) == report["rows"] == 1200
    assert report["partitions"][0]["class_counts"].keys() == {"0", "1"}
    assert report["fusion"] == "weighted"
    assert report["fusion_repr"] == "Weighted(by='rows')"
    assert report["estimator"] == SGD and report["params"] == {"random_state": 0}
    assert report["fit_seconds"] > 0
    assert report["score_name"] == "accuracy" and 0.9 <= report["train_score"] <= 1
    assert report["classes"] == [0, 1] and report["features"] == FEATURES
    assert report["model"] == str(model_path.resolve())


@pytest.fixture(scope="module")
def scheduler_fits(client, files):
    """Two ``daskfuse fit`` runs on the shared cluster (``--scheduler``), at once."""
    root = files["root"]
    address = client.scheduler.address
    runs = run_all(
        {
            "ridge": (
                "fit",
                root / "csv" / "part-*.csv",
                "--target",
                "value",
                "--estimator",
                "sklearn.linear_model.Ridge",
                "--fusion",
                "exact",
                "--scheduler",
                address,
                "--out",
                root / "ridge.skops",
            ),
            "kmeans": (
                "fit",
                root / "points.csv",
                "--drop",
                "id",
                "--estimator",
                "sklearn.cluster.KMeans",
                "--params",
                '{"n_clusters": 3, "n_init": 2, "random_state": 0}',
                "--scheduler",
                address,
                "--out",
                root / "km.skops",
            ),
        }
    )
    return runs, address


def test_fit_csv_glob_on_a_running_scheduler(scheduler_fits, files):
    runs, address = scheduler_fits
    status, out, err = runs["ridge"]
    assert status == 0, err
    assert f"Connected to the dask scheduler at {address}" in out
    assert "Starting a LocalCluster" not in out
    # a regressor fused exactly: no class counts; each partition's own R², from its
    # cross-products (no partition model is fitted, so no fit seconds)
    assert "Partition report (3 partitions)" in out
    assert "rows per class" not in out and "R²" in out.split("Partition report")[1]
    loaded = load(files["root"] / "ridge.skops")
    assert type(loaded) is FusedRegressor
    assert loaded.n_partitions_ == 3  # one per file
    reg = files["reg"]
    X, y = reg[["x1", "x2", "x3"]], reg["value"]
    here = FusedRegressor(Ridge(), fusion="exact", n_partitions=3).fit(X, y)
    np.testing.assert_allclose(
        loaded.fused_estimator_.coef_, here.fused_estimator_.coef_, rtol=1e-8
    )
    np.testing.assert_allclose(loaded.predict(X), here.predict(X), rtol=1e-8)


def test_fit_clusterer_on_a_csv_file(scheduler_fits, files, client):
    status, out, err = scheduler_fits[0]["kmeans"]
    assert status == 0, err
    loaded = load(files["root"] / "km.skops")
    assert type(loaded) is FusedClusterer and loaded.fusion_.name == "recluster"
    assert list(loaded.feature_names_in_) == ["u", "v"]  # --drop id
    # one small file, one block: one partition per thread of the cluster (2), as the
    # Python API does for in-memory data, not "1 partitions"
    assert loaded.n_partitions_ == sum(client.nthreads().values()) == 2
    assert "done in " in out and " s: 2 partitions, fusion=Recluster(" in out
    points = files["points"][["u", "v"]]
    here = FusedClusterer(KMeans(n_clusters=3, n_init=2, random_state=0), n_partitions=2).fit(
        points
    )
    np.testing.assert_array_equal(loaded.predict(points), here.predict(points))
    assert len(np.unique(loaded.predict(points))) == 3


# ------------------------------------------------------------------ predict, report
@pytest.fixture(scope="module")
def process_runs(parquet_fit, files):
    """``predict``, ``report`` and error cases of the saved model, as processes, at once."""
    proc, model, _ = parquet_fit
    assert proc.returncode == 0, proc.stderr
    root = files["root"]
    return run_all(
        {
            "predict": (
                "predict",
                model,
                root / "pq",
                "--target",
                "label",
                "--out",
                root / "pred.csv",
            ),
            "report": ("report", model),
            "missing-file": (
                "fit",
                root / "nope.parquet",
                "--target",
                "label",
                "--estimator",
                SGD,
                "--out",
                root / "x.skops",
            ),
            "no-such-module": (
                "fit",
                root / "pq",
                "--target",
                "label",
                "--estimator",
                "no.such.Module",
                "--out",
                root / "x.skops",
            ),
            "not-a-model": ("predict", root / "points.csv", root / "pq", "--out", root / "p.csv"),
        }
    )


def test_predict_writes_one_row_per_input_row(process_runs, parquet_fit, files):
    status, out, err = process_runs["predict"]
    assert status == 0, err
    assert "Wrote 1,200 rows of predict output" in out
    written = pd.read_csv(files["root"] / "pred.csv")
    assert list(written.columns) == ["prediction"] and len(written) == 1200
    frame = files["frame"]
    np.testing.assert_array_equal(
        written["prediction"], load(parquet_fit[1]).predict(frame[FEATURES])
    )


def test_predict_to_parquet_in_process(parquet_fit, files, capsys):
    proc, model_path, _ = parquet_fit
    assert proc.returncode == 0, proc.stderr
    root = files["root"]
    out = root / "scores.parquet"
    # the label column is left out because the model names its feature columns
    status = main(
        [
            "predict",
            str(model_path),
            str(root / "pq" / "*.parquet"),
            "--method",
            "decision_function",
            "--out",
            str(out),
        ]
    )
    assert status == 0, capsys.readouterr().err
    written = pd.read_parquet(out)
    assert list(written.columns) == ["decision_function"] and len(written) == 1200
    np.testing.assert_allclose(
        written["decision_function"],
        load(model_path).decision_function(files["frame"][FEATURES]),
    )
    assert not [p for p in os.listdir(root) if ".tmp-" in p]


def test_report_prints_the_partition_table(process_runs):
    status, out, err = process_runs["report"]
    assert status == 0, err
    assert "Estimator:   SGDClassifier(random_state=0)" in out
    assert "Fusion:      Weighted(by='rows')" in out
    assert "Classes:     0, 1" in out
    assert "Features:    4: a, b, c, d" in out
    assert "Partition report (6 partitions)" in out
    for partition in range(6):
        cells = table_row(out, str(partition))
        assert cells[1] == "200"
        assert 0.5 <= float(cells[3]) <= 1


# ------------------------------------------------------------------ errors
def touch(path, X):
    with open(path, "w") as f:
        f.write("ran")
    return X


@pytest.mark.parametrize(
    ("case", "command_name", "message"),
    [
        ("missing-file", "fit", "no such file or directory: "),
        ("no-such-module", "fit", "--estimator no.such.Module: cannot import no.such"),
        ("not-a-model", "predict", "is not a model file written by daskfuse.save"),
    ],
)
def test_errors_in_a_process_are_one_line(process_runs, case, command_name, message):
    status, out, err = process_runs[case]
    assert status == 2
    line = one_error_line(err, command_name)
    assert message in line
    assert out == ""


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (
            ["fit", "{root}/nothing-*.csv", "--target", "label"],
            2,
            "no files match {root}/nothing-*.csv",
        ),
        (
            ["fit", "{root}/empty", "--target", "label"],
            2,
            "{root}/empty holds no data files (.csv, .parquet, .pq)",
        ),
        (
            ["fit", "{root}/notes.txt", "--target", "label"],
            2,
            "cannot tell the format of {root}/notes.txt",
        ),
        (
            ["fit", "{root}/pq", "--target", "lable"],
            2,
            "--target 'lable' is not a column of {root}/pq; its columns: a, b, c, d, label",
        ),
        (
            ["fit", "{root}/pq"],
            2,
            "--target is required to fit a classifier (SGDClassifier); the columns of",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--estimator", "os.path.join"],
            2,
            "--estimator os.path.join is not a scikit-learn estimator class",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--estimator", "sklearn.linear_model.Nope"],
            2,
            "--estimator sklearn.linear_model.Nope: module sklearn.linear_model has no 'Nope'",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--params", "{'alpha': 1}"],
            2,
            "--params is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--params", "[1, 2]"],
            2,
            "--params must be a JSON object",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--params", '{"alhpa": 0.1}'],
            2,
            "--params rejected by SGDClassifier: SGDClassifier.__init__() got an unexpected "
            "keyword argument 'alhpa'; its parameters: alpha,",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--params", '{"loss": "nope"}'],
            2,
            "--params rejected by SGDClassifier: The 'loss' parameter of SGDClassifier must be",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--fusion", "exact"],
            2,
            "fusion=Exact(method='auto') cannot fuse SGDClassifier()",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--out", "{root}/no/dir/m.skops"],
            2,
            "--out {root}/no/dir/m.skops: no such directory",
        ),
        (["report", "{root}/missing.skops"], 2, "no such model file: {root}/missing.skops"),
        (
            ["report", "{root}/points.csv"],
            2,
            "{root}/points.csv is not a model file written by daskfuse.save (a skops file)",
        ),
        (
            ["predict", "{root}/missing.skops", "{root}/pq", "--out", "{root}/p.txt"],
            2,
            "--out {root}/p.txt: expected a name ending in .csv, .parquet, .pq",
        ),
    ],
)
def test_errors_are_one_line_before_any_work(files, capsys, args, status, message):
    root = str(files["root"])
    args = [a.replace("{root}", root) for a in args]
    if args[0] == "fit":
        if "--estimator" not in args:
            args += ["--estimator", SGD]
        if "--out" not in args:
            args += ["--out", f"{root}/x.skops"]
    assert main(args) == status
    captured = capsys.readouterr()
    line = one_error_line(captured.err, args[0])
    assert message.replace("{root}", root) in line
    assert captured.out == ""  # nothing started, nothing fitted


def test_scheduler_and_workers_exclude_each_other(files, capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "fit",
                str(files["root"] / "pq"),
                "--target",
                "label",
                "--estimator",
                SGD,
                "--scheduler",
                "tcp://127.0.0.1:1",
                "--workers",
                "2",
                "--out",
                "m.skops",
            ]
        )
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "daskfuse fit: error: argument --workers: not allowed with argument --scheduler"


def test_untrusted_model_is_refused_until_trusted(files, capsys):
    root = files["root"]
    marker = root / "marker"
    path = root / "partial.skops"
    save(FunctionTransformer(functools.partial(touch, str(marker))).fit([[0.0]]), path)
    assert main(["report", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err, "report")
    assert "holds types that daskfuse does not trust: ['functools.partial'" in line
    assert "--trust functools.partial --trust " in line
    assert not marker.exists()
    name = f"{touch.__module__}.{touch.__qualname__}"
    assert main(["report", str(path), "--trust", "functools.partial", "--trust", name]) == 0
    out = capsys.readouterr().out
    assert "FunctionTransformer" in out and "No partition report" in out
    assert not marker.exists()


# ------------------------------------------------------------------ issue 13
#: a third-party estimator module, written to a folder on PYTHONPATH: a plain
#: BaseEstimator subclass without _parameter_constraints, one whose fit fails, and
#: names that must not be called when --estimator names them
CUSTOM_MODULE = """
import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

MARKER = os.path.join(os.path.dirname(__file__), "called")


def _mark(what):
    with open(MARKER, "a") as f:
        f.write(what + "\\n")


class NearestMean(ClassifierMixin, BaseEstimator):
    def __init__(self, shrink=0.0):
        self.shrink = shrink

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        self.classes_ = np.unique(y)
        self.means_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        self.means_ *= 1.0 - self.shrink
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        distances = ((X[:, None, :] - self.means_[None]) ** 2).sum(axis=2)
        return self.classes_[distances.argmin(axis=1)]


class Failing(NearestMean):
    def fit(self, X, y):
        raise RuntimeError("this estimator cannot fit")


def boom(*args, **kwargs):
    _mark("boom")


class NoFit:
    def __init__(self, *args, **kwargs):
        _mark("NoFit")

    def get_params(self, deep=True):
        return {}


def __getattr__(name):
    _mark(f"getattr {name}")
    raise AttributeError(name)
"""


@pytest.fixture(scope="module")
def custom_module(tmp_path_factory):
    """A folder holding the module ``daskfuse_custom_estimators`` (CUSTOM_MODULE)."""
    folder = tmp_path_factory.mktemp("custom-module")
    (folder / "daskfuse_custom_estimators.py").write_text(CUSTOM_MODULE)
    return folder


@pytest.fixture(scope="module")
def empty_parts(tmp_path_factory):
    """Part files with header-only CSVs (the first in glob order) and a 0-row parquet
    part, a header-only CSV on its own, and a model fitted here on the same columns."""
    root = tmp_path_factory.mktemp("cli-empty")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 4))
    frame = pd.DataFrame(X, columns=FEATURES)
    frame["label"] = (X[:, 0] - X[:, 3] > 0).astype(int)
    (root / "csv").mkdir()
    frame.iloc[:0].to_csv(root / "csv" / "part-0.csv", index=False)
    frame.iloc[:100].to_csv(root / "csv" / "part-1.csv", index=False)
    frame.iloc[:0].to_csv(root / "csv" / "part-2.csv", index=False)
    frame.iloc[100:].to_csv(root / "csv" / "part-3.csv", index=False)
    (root / "pq").mkdir()
    frame.iloc[:100].to_parquet(root / "pq" / "part-0.parquet")
    frame.iloc[:0].to_parquet(root / "pq" / "part-1.parquet")
    frame.iloc[100:].to_parquet(root / "pq" / "part-2.parquet")
    frame.iloc[:0].to_csv(root / "header.csv", index=False)
    (root / "headers").mkdir()
    for i in range(2):
        frame.iloc[:0].to_csv(root / "headers" / f"part-{i}.csv", index=False)
    model = FusedClassifier(SGDClassifier(random_state=0), n_partitions=2)
    model.fit(frame[FEATURES], frame["label"])
    save(model, root / "model.skops")
    return {"root": root, "frame": frame, "model": model}


@pytest.fixture(scope="module")
def empty_part_runs(empty_parts, custom_module):
    """``predict`` over part files with empty ones and ``fit`` of a custom estimator,
    as processes, at once (the custom module on PYTHONPATH)."""
    root = empty_parts["root"]
    custom = "daskfuse_custom_estimators"
    pythonpath = os.pathsep.join(filter(None, [str(custom_module), os.environ.get("PYTHONPATH")]))
    return run_all(
        {
            "csv": (
                "predict",
                root / "model.skops",
                root / "csv" / "part-*.csv",
                "--target",
                "label",
                "--out",
                root / "pred-csv.csv",
            ),
            "parquet": (
                "predict",
                root / "model.skops",
                root / "pq",
                "--target",
                "label",
                "--out",
                root / "pred-pq.parquet",
            ),
            "custom": (
                "fit",
                root / "csv" / "part-*.csv",
                "--target",
                "label",
                "--estimator",
                f"{custom}.NearestMean",
                "--params",
                '{"shrink": 0.5}',
                "--partitions",
                "2",
                "--workers",
                "1",
                "--out",
                root / "custom.skops",
            ),
            "failing": (
                "fit",
                root / "csv" / "part-*.csv",
                "--target",
                "label",
                "--estimator",
                f"{custom}.Failing",
                "--workers",
                "1",
                "--out",
                root / "failing.skops",
            ),
        },
        env={"PYTHONPATH": pythonpath},
    )


@pytest.mark.parametrize(("case", "out"), [("csv", "pred-csv.csv"), ("parquet", "pred-pq.parquet")])
def test_predict_over_part_files_with_empty_ones(empty_part_runs, empty_parts, case, out):
    status, stdout, err = empty_part_runs[case]
    assert status == 0, err
    assert "Wrote 240 rows of predict output" in stdout
    path = empty_parts["root"] / out
    written = pd.read_csv(path) if case == "csv" else pd.read_parquet(path)
    frame = empty_parts["frame"]
    assert list(written.columns) == ["prediction"] and len(written) == len(frame)
    np.testing.assert_array_equal(
        written["prediction"], empty_parts["model"].predict(frame[FEATURES])
    )


def test_read_data_leaves_out_header_only_csv_files(empty_parts):
    from daskfuse.cli import read_data

    frame = read_data(str(empty_parts["root"] / "csv" / "part-*.csv"))
    # the first file holds only a header: its empty columns are not taken for strings
    assert frame.npartitions == 2
    assert all(pd.api.types.is_float_dtype(t) for t in frame.dtypes[FEATURES])
    pd.testing.assert_frame_equal(frame.compute().reset_index(drop=True), empty_parts["frame"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("header.csv", "{root}/header.csv has no rows: it holds only a header line"),
        (
            "headers/*.csv",
            "{root}/headers/*.csv has no rows: all 2 CSV files it names hold only a header line",
        ),
        ("headers", "{root}/headers has no rows: all 2 CSV files it names hold only a header"),
    ],
)
def test_fit_on_header_only_csv_says_it_has_no_rows(empty_parts, capsys, data, message):
    root = str(empty_parts["root"])
    status = main(
        [
            "fit",
            f"{root}/{data}",
            "--target",
            "label",
            "--estimator",
            SGD,
            "--out",
            f"{root}/x.skops",
        ]
    )
    assert status == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err, "fit")
    assert message.replace("{root}", root) in line
    assert "string" not in line
    assert captured.out == ""


def test_fit_a_custom_estimator_without_parameter_constraints(
    empty_part_runs, empty_parts, custom_module, monkeypatch
):
    status, out, err = empty_part_runs["custom"]
    assert status == 0, err
    assert "Traceback" not in err
    monkeypatch.syspath_prepend(str(custom_module))
    import daskfuse_custom_estimators as custom

    name = "daskfuse_custom_estimators.NearestMean"
    assert f"loading this model needs --trust {name}" in out
    loaded = load(empty_parts["root"] / "custom.skops", trusted=[name])
    assert type(loaded.estimator) is custom.NearestMean and loaded.estimator.shrink == 0.5
    assert loaded.n_partitions_ == 2
    frame = empty_parts["frame"]
    here = FusedClassifier(custom.NearestMean(shrink=0.5), n_partitions=2).fit(
        frame[FEATURES], frame["label"]
    )
    np.testing.assert_array_equal(loaded.predict(frame[FEATURES]), here.predict(frame[FEATURES]))


def test_an_estimator_that_fails_to_fit_is_one_line(empty_part_runs, empty_parts):
    status, _, err = empty_part_runs["failing"]
    assert status == 2
    line = one_error_line(err, "fit")
    assert "RuntimeError: this estimator cannot fit" in line
    assert not (empty_parts["root"] / "failing.skops").exists()


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (
            "daskfuse_custom_estimators.boom",
            "is not a scikit-learn estimator class: it is a function, not a class",
        ),
        (
            "daskfuse_custom_estimators.NoFit",
            "is not a scikit-learn estimator class: the class has no fit",
        ),
        ("daskfuse_custom_estimators.lazy", "module daskfuse_custom_estimators has no 'lazy'"),
        ("os.system", "is not a scikit-learn estimator class: it is a builtin_function_or_"),
        ("builtins.dict", "is not a scikit-learn estimator class: the class has no fit"),
        ("os.path", "is not a scikit-learn estimator class: it is a module, not a class"),
        ("sklearn.preprocessing.LabelEncoder", "fusion='auto' found no strategy for LabelEncoder"),
    ],
)
def test_estimator_that_is_not_one_is_refused_and_nothing_called(
    files, custom_module, monkeypatch, capsys, estimator, message
):
    monkeypatch.syspath_prepend(str(custom_module))
    marker = custom_module / "called"
    root = str(files["root"])
    status = main(
        [
            "fit",
            f"{root}/pq",
            "--target",
            "label",
            "--estimator",
            estimator,
            "--out",
            f"{root}/x.skops",
        ]
    )
    assert status == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err, "fit")
    assert f"--estimator {estimator}" in line or "LabelEncoder" in estimator
    assert message in line
    assert captured.out == ""
    assert not marker.exists(), marker.read_text()


@pytest.fixture(scope="module")
def plain_model(files):
    """A model of ``files["frame"]`` fitted here (feature names a, b, c, d), saved."""
    path = files["root"] / "plain.skops"
    frame = files["frame"]
    save(
        FusedClassifier(SGDClassifier(random_state=0), n_partitions=2).fit(
            frame[FEATURES], frame["label"]
        ),
        path,
    )
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["predict", "{model}", "{root}/pq", "--target", "lable", "--out", "{root}/p.csv"],
            "--target 'lable' is not a column of {root}/pq",
        ),
        (
            ["predict", "{model}", "{root}/pq", "--method", "transform", "--out", "{root}/p.csv"],
            "the model (FusedClassifier) has no transform",
        ),
        (
            ["predict", "{model}", "{root}/points.csv", "--out", "{root}/p.csv"],
            "{root}/points.csv lacks the model's feature column(s) a, b, c, d",
        ),
        (
            [
                "fit",
                "{root}/pq",
                "--target",
                "label",
                "--estimator",
                SGD,
                "--fusion",
                "exact",
                "--out",
                "{root}/x.skops",
            ],
            "cannot fuse SGDClassifier()",
        ),
        (
            ["fit", "{root}/pq", "--target", "label", "--estimator", SGD, "--out", "{root}"],
            "--out {root} is a directory",
        ),
        (["report", "{root}/pq"], "{root}/pq is a directory, not a model file"),
        (
            ["report", "{model}", "--max-bytes", "1000"],
            "{model}: unpacked, the file takes more than max_bytes=1,000 bytes",
        ),
        (
            ["predict", "{model}", "{root}/pq", "--max-bytes", "1000", "--out", "{root}/p.csv"],
            "(--max-bytes on the command line)",
        ),
    ],
)
def test_user_errors_all_exit_2_in_one_line(files, plain_model, capsys, args, message):
    root = str(files["root"])

    def fill(text):
        return text.replace("{root}", root).replace("{model}", plain_model)

    assert main([fill(a) for a in args]) == 2
    captured = capsys.readouterr()
    assert fill(message) in one_error_line(captured.err, args[0])
    assert captured.out == ""


def test_report_loads_with_a_larger_max_bytes(plain_model, capsys):
    assert main(["report", plain_model, "--max-bytes", str(10**7)]) == 0
    assert "Partition report (2 partitions)" in capsys.readouterr().out


def test_predict_target_not_a_column_is_refused(files, plain_model, capsys):
    root = str(files["root"])
    status = main(
        ["predict", plain_model, f"{root}/pq", "--target", "lable", "--out", f"{root}/p.csv"]
    )
    assert status == 2
    line = one_error_line(capsys.readouterr().err, "predict")
    assert f"--target 'lable' is not a column of {root}/pq; its columns: a, b, c, d, label" in line
    assert not os.path.exists(f"{root}/p.csv")


@pytest.mark.parametrize("command_name", ["fit", "predict", "report", "demo"])
def test_help_states_the_exit_status(capsys, command_name):
    with pytest.raises(SystemExit) as exc:
        main([command_name, "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 on success; 2 on an error, reported in one line on stderr" in out


# ------------------------------------------------------------------ issue 17: first hour
def rendered(table):
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(table)
    return console.export_text()


def test_report_table_shows_only_the_columns_that_mean_something():
    from daskfuse._console import _report_table

    # a regressor fused exactly: no class counts, no per-partition score
    regressor = pd.DataFrame(
        {
            "partition": [0],
            "rows": [300],
            "class_counts": [None],
            "train_score": [np.nan],
            "fit_seconds": [0.01],
            "worker": ["tcp://127.0.0.1:1"],
        }
    )
    text = rendered(_report_table(regressor, score_label="train\nR²"))
    assert "Partition report (1 partition)" in text  # not "1 partitions"
    assert "rows per class" not in text and "R²" not in text
    assert table_row(text, "0") == ["0", "300", "0.01", "127.0.0.1:1"]
    classifier = regressor.assign(class_counts=[{0: 120, 1: 180}], train_score=[0.9])
    text = rendered(_report_table(classifier))
    assert "rows per class" in text and "accuracy" in text
    assert table_row(text, "0") == ["0", "300", "0:120 1:180", "0.9000", "0.01", "127.0.0.1:1"]


@pytest.fixture(scope="module")
def nan_parts(tmp_path_factory):
    """Two CSV part files; the second has NaN in column b and infinity in column c."""
    root = tmp_path_factory.mktemp("nan-parts")
    rng = np.random.default_rng(1)
    for i in range(2):
        frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=FEATURES)
        frame["label"] = (frame["a"] > 0).astype(int)
        if i == 1:
            frame.loc[5, "b"], frame.loc[7, "c"] = np.nan, np.inf
        frame.to_csv(root / f"part-{i}.csv", index=False)
    return root


def nan_fit(root, address, *extra):
    return main(
        ["fit", f"{root}/part-*.csv", "--target", "label", "--estimator", SGD]
        + ["--scheduler", address, "--out", f"{root}/m.skops", *extra]
    )


def test_nan_in_features_names_the_columns_and_the_on_error_flag(client, nan_parts, capsys):
    assert nan_fit(nan_parts, client.scheduler.address) == 2
    line = one_error_line(capsys.readouterr().err, "fit")
    assert (
        f"partition 1: feature column(s) b, c of {nan_parts}/part-*.csv hold NaN or infinity, "
        "which SGDClassifier cannot fit" in line
    )
    assert "--on-error skip" in line and "on_error=" not in line
    assert not (nan_parts / "m.skops").exists()


def test_on_error_skip_leaves_the_partition_out_and_says_so(client, nan_parts, capsys):
    assert nan_fit(nan_parts, client.scheduler.address, "--on-error", "skip") == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    warned = [line for line in captured.err.splitlines() if line.startswith("daskfuse fit: ")]
    assert all(line.startswith("daskfuse fit: warning: ") for line in warned), captured.err
    assert (
        "daskfuse fit: warning: 1 of 2 partitions skipped (--on-error skip) and left out of "
        "the fusion: partition 1: feature column(s) b, c hold NaN or infinity" in warned
    ), captured.err
    assert "on_error=" not in captured.err  # the Python API's words, not the CLI's
    model = load(nan_parts / "m.skops")
    assert model.n_partitions_skipped_ == 1
    assert model.partition_report_["skipped"].tolist() == [False, True]


def test_fit_help_names_on_error(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--on-error {raise,skip}" in out
