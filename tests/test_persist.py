"""daskfuse.persist: skops files for every fusion family, and safe loading."""

from __future__ import annotations

import functools
import io
import json
import tracemalloc
import warnings
import zipfile

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from daskfuse import (
    FusedClassifier,
    FusedClusterer,
    FusedRegressor,
    FusedTransformer,
    fuse,
)
from daskfuse.fusion import FUSERS
from daskfuse.models import FusedVotingClassifier
from daskfuse.persist import (
    ModelFileError,
    UntrustedTypesError,
    load,
    save,
    trusted_types,
)

#: what the foreign types below did while a file was loaded
EVENTS = []


def type_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    labels = np.where(y == 1, "yes", "no")
    return X, y, frame, labels


def fit_case(name, data):
    X, y, frame, labels = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "weighted-sgd":  # feature names, a DataFrame input
            return FusedClassifier(
                SGDClassifier(random_state=0), fusion="weighted", n_partitions=3
            ).fit(frame, y), frame
        if name == "exact-gaussiannb":
            return FusedClassifier(GaussianNB(), fusion="exact", n_partitions=3).fit(X, y), X
        if name == "exact-pca":
            return FusedTransformer(PCA(n_components=2), n_partitions=3).fit(X), X
        if name == "exact-ridge":
            model = FusedRegressor(Ridge(), fusion="exact", n_partitions=3)
            return model.fit(X, X @ [1.0, 2.0, 3.0, 4.0]), X
        if name == "recluster-kmeans":
            return FusedClusterer(
                KMeans(n_clusters=3, n_init=2, random_state=0), n_partitions=3
            ).fit(X), X
        if name == "trees-forest":
            return FusedClassifier(
                RandomForestClassifier(n_estimators=4, random_state=0),
                fusion="trees",
                n_partitions=3,
            ).fit(X, y), X
        if name == "vote-svc":  # string labels
            return FusedClassifier(SVC(kernel="linear"), fusion="vote", n_partitions=3).fit(
                X, labels
            ), X
        if name == "stack-logistic":
            return FusedClassifier(
                LogisticRegression(), fusion="stack", n_partitions=3, random_state=0
            ).fit(X, y), X
        if name == "weighted-mlp":  # the MLP's optimizer objects
            return FusedClassifier(
                MLPClassifier((4,), max_iter=30, random_state=0),
                fusion="weighted",
                n_partitions=2,
                random_state=0,
            ).fit(X, y), X
    raise AssertionError(name)


CASES = [
    "weighted-sgd",
    "exact-gaussiannb",
    "exact-pca",
    "exact-ridge",
    "recluster-kmeans",
    "trees-forest",
    "vote-svc",
    "stack-logistic",
    "weighted-mlp",
]

OUTPUTS = ("predict", "predict_proba", "decision_function", "transform")


@pytest.mark.parametrize("case", CASES)
def test_every_fusion_family_round_trips(case, data, tmp_path):
    model, X = fit_case(case, data)
    path = tmp_path / "model.skops"
    save(model, path)
    # a skops zip of JSON and arrays: no pickle inside
    with zipfile.ZipFile(path) as z:
        assert "schema.json" in z.namelist()
        assert not any(n.endswith((".pkl", ".pickle")) for n in z.namelist())
    # the file needs no trust beyond daskfuse's own list
    assert set(skops.io.get_untrusted_types(file=path)) <= set(trusted_types())

    loaded = load(path)
    assert type(loaded) is type(model)
    assert type(loaded.fused_estimator_) is type(model.fused_estimator_)
    compared = 0
    for method in OUTPUTS:
        if hasattr(model, method):
            np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X))
            compared += 1
    assert compared
    assert loaded.fusion_ == model.fusion_
    assert loaded.partition_ == model.partition_
    assert loaded.n_partitions_ == model.n_partitions_
    assert loaded.n_features_in_ == model.n_features_in_
    if hasattr(model, "classes_"):
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
    if hasattr(model, "feature_names_in_"):
        np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
    # the partition report is a DataFrame again, with the same values and dtypes
    assert isinstance(loaded.partition_report_, pd.DataFrame)
    pd.testing.assert_frame_equal(loaded.partition_report_, model.partition_report_)
    # save did not touch the model
    assert isinstance(model.partition_report_, pd.DataFrame)


def test_partition_report_is_stored_as_plain_columns(data, tmp_path):
    model, _ = fit_case("vote-svc", data)
    path = tmp_path / "model.skops"
    save(model, path)
    with zipfile.ZipFile(path) as z:
        schema = json.loads(z.read("schema.json"))
    report = schema["content"]["content"]["partition_report_"]
    assert report["__class__"] == "dict"
    text = json.dumps(report)
    assert "pandas" not in text and "DataFrame" not in text
    counts = load(path).partition_report_["class_counts"][0]
    assert set(counts) == {"no", "yes"}
    assert sum(counts.values()) == model.partition_report_["rows"][0]


def test_clusterer_fitted_on_dask_data_leaves_out_its_lazy_labels(data, tmp_path):
    X = data[0]
    model = FusedClusterer(KMeans(n_clusters=3, n_init=2, random_state=0)).fit(
        da.from_array(X, chunks=200)
    )
    assert isinstance(model.labels_, da.Array)
    save(model, tmp_path / "km.skops")
    loaded = load(tmp_path / "km.skops")
    assert not hasattr(loaded, "labels_")
    assert isinstance(model.labels_, da.Array)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize(
    "make",
    [
        lambda X, y: LogisticRegression().fit(X, y),
        lambda X, y: RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y),
        lambda X, y: StandardScaler().fit(X),
        lambda X, y: fuse(
            [
                LogisticRegression().fit(X[:300], y[:300]),
                LogisticRegression().fit(X[300:], y[300:]),
            ],
            fusion="vote",
        ),
    ],
    ids=["logistic", "forest-regressor", "scaler", "fuse-vote"],
)
def test_plain_estimators_round_trip(make, data, tmp_path):
    X, y, _, _ = data
    model = make(X, y)
    save(model, tmp_path / "plain.skops")
    loaded = load(tmp_path / "plain.skops")
    assert type(loaded) is type(model)
    method = "predict" if hasattr(model, "predict") else "transform"
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X))
    if isinstance(model, FusedVotingClassifier):
        assert len(loaded.estimators_) == 2


# ------------------------------------------------------------------ foreign types
class Sneaky(ClassifierMixin, BaseEstimator):
    """A classifier of this test module: not a type daskfuse trusts."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.model_ = LogisticRegression(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def __setstate__(self, state):
        EVENTS.append("Sneaky.__setstate__")
        super().__setstate__(state)


class MyFusedClassifier(FusedClassifier):
    """A subclass of a trusted daskfuse class, defined elsewhere: not trusted."""


def touch(path, X):
    with open(path, "w") as f:
        f.write("ran")
    return X


def test_a_foreign_estimator_class_is_refused_and_not_run(data, tmp_path):
    X, y, _, _ = data
    model = FusedClassifier(Sneaky(), fusion="vote", n_partitions=2).fit(X, y)
    path = tmp_path / "sneaky.skops"
    save(model, path)
    EVENTS.clear()
    with pytest.raises(UntrustedTypesError) as exc:
        load(path)
    assert exc.value.types == [type_name(Sneaky)]
    message = str(exc.value)
    assert type_name(Sneaky) in message and "trusted=" in message
    assert "nothing was loaded" in message
    assert EVENTS == []  # no code of the file's types ran
    # an explicit trust, after review, loads it
    loaded = load(path, trusted=[type_name(Sneaky)])
    assert EVENTS  # now Sneaky's code did run
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert load(path, trusted=[Sneaky]).n_partitions_ == 2  # a type works too


def test_a_subclass_of_a_daskfuse_class_is_not_trusted(data, tmp_path):
    X, y, _, _ = data
    model = MyFusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    save(model, tmp_path / "sub.skops")
    with pytest.raises(UntrustedTypesError, match="MyFusedClassifier"):
        load(tmp_path / "sub.skops")
    assert type_name(MyFusedClassifier) not in trusted_types()


def test_a_functools_partial_is_refused_and_not_called(data, tmp_path):
    X = data[0]
    marker = tmp_path / "marker"
    model = FunctionTransformer(functools.partial(touch, str(marker))).fit(X)
    assert not marker.exists()
    path = tmp_path / "partial.skops"
    save(model, path)
    with pytest.raises(UntrustedTypesError) as exc:
        load(path)
    assert set(exc.value.types) == {"functools.partial", type_name(touch)}
    assert not marker.exists()
    loaded = load(path, trusted=exc.value.types)
    assert not marker.exists()  # building the partial did not call it
    loaded.transform(X)
    assert marker.read_text() == "ran"


def test_trusted_types_come_from_daskfuse_modules():
    names = trusted_types()
    for cls in FUSERS.values():
        assert type_name(cls) in names
    for name in ("FusedClassifier", "FusedRegressor", "FusedTransformer", "FusedClusterer"):
        assert f"daskfuse.estimators.{name}" in names
    for name in (
        "FusedVotingClassifier",
        "FusedVotingRegressor",
        "FusedStackingClassifier",
        "FusedStackingRegressor",
    ):
        assert f"daskfuse.models.{name}" in names
    assert "daskfuse.partition.Rows" in names
    assert "sklearn.tree._tree.Tree" in names
    # nothing private, nothing of other packages but the scikit-learn types daskfuse
    # models hold and numpy.dtype (the dtype field of exact fusion's kept summaries)
    assert all(n.startswith(("daskfuse.", "sklearn.")) or n == "numpy.dtype" for n in names)
    assert not any(n.rsplit(".", 1)[1].startswith("_") for n in names)
    assert type_name(Sneaky) not in names


# ------------------------------------------------------------------ broken files
def test_corrupt_trees_are_refused(data, tmp_path):
    X, y, _, _ = data
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    tree.tree_.children_left[0] = 10**6
    save(tree, tmp_path / "children.skops")
    with pytest.raises(ModelFileError, match="corrupt decision tree.*child node"):
        load(tmp_path / "children.skops")

    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y)
    forest.estimators_[1].tree_.feature[0] = 40
    save(forest, tmp_path / "feature.skops")
    with pytest.raises(ModelFileError, match="split features out of range"):
        load(tmp_path / "feature.skops")


def test_files_that_are_not_models(data, tmp_path):
    text = tmp_path / "data.csv"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(ModelFileError, match="not a model file written by daskfuse.save"):
        load(text)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="not a model file"):
        load(tmp_path / "other.zip")
    skops.io.dump({"a": 1}, tmp_path / "dict.skops")
    with pytest.raises(ModelFileError, match="holds a dict, not a scikit-learn estimator"):
        load(tmp_path / "dict.skops")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(tmp_path / "missing.skops")
    with pytest.raises(ModelFileError, match="is a directory"):
        load(tmp_path)


def test_bad_arguments(data, tmp_path):
    X, y, _, _ = data
    save(LogisticRegression().fit(X, y), tmp_path / "m.skops")
    with pytest.raises(TypeError, match="not a bool"):
        load(tmp_path / "m.skops", trusted=True)
    with pytest.raises(TypeError, match="must hold type names"):
        load(tmp_path / "m.skops", trusted=[3])
    with pytest.raises(TypeError, match="must be a scikit-learn estimator"):
        save({"not": "a model"}, tmp_path / "x.skops")


# ------------------------------------------------------------------ sizes and shapes
def rewrite(path, out, replace=None, add=None, compression=zipfile.ZIP_STORED):
    """Copy the zip ``path`` to ``out``: members renamed in ``replace`` get new bytes,
    ``add`` adds members, every member written with ``compression``."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, replace.get(info.filename, src.read(info)))
        for name, content in add.items():
            dst.writestr(name, content)
    return out


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def member_of(path, attribute):
    """The zip member holding the array ``attribute`` of the top-level estimator."""
    with zipfile.ZipFile(path) as z:
        schema = json.loads(z.read("schema.json"))
    return schema["content"]["content"][attribute]["file"]


def peak_bytes_of(call):
    """Run ``call()`` (which must raise ModelFileError); the peak bytes it allocated."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as exc:
            call()
        return tracemalloc.get_traced_memory()[1], str(exc.value)
    finally:
        tracemalloc.stop()


@pytest.fixture
def logistic_file(data, tmp_path):
    X, y, _, _ = data
    path = tmp_path / "logistic.skops"
    save(LogisticRegression().fit(X, y), path)
    return path


def test_a_small_file_of_compressed_zeros_is_refused_before_unpacking(logistic_file, tmp_path):
    zeros = npy_bytes(np.zeros((10_000, 4)))  # 320 kB of zeros, some hundred bytes packed
    coef = member_of(logistic_file, "coef_")
    bomb = rewrite(
        logistic_file,
        tmp_path / "bomb.skops",
        replace={coef: zeros},
        compression=zipfile.ZIP_DEFLATED,
    )
    assert bomb.stat().st_size < 10_000
    peak, message = peak_bytes_of(lambda: load(bomb, max_bytes=100_000))
    assert f"{bomb}: unpacked, the file takes more than max_bytes=100,000 bytes" in message
    assert f"its member {coef} alone 320,128" in message and "--max-bytes" in message
    assert peak < 100_000  # nothing was unpacked
    # with room for it, the file loads, and its wrong coef_ is then refused by shape
    with pytest.raises(ModelFileError, match=r"coef_ has shape \(10000, 4\); expected 1"):
        load(bomb, max_bytes=10**6)


def test_a_compressed_archive_inside_the_file_counts(logistic_file, tmp_path):
    inner = io.BytesIO()
    np.savez_compressed(inner, big=np.zeros(100_000))
    path = rewrite(logistic_file, tmp_path / "nested.skops", add={"extra.npz": inner.getvalue()})
    with pytest.raises(ModelFileError) as exc:
        load(path, max_bytes=500_000)
    message = str(exc.value)
    assert "takes more than max_bytes=500,000 bytes" in message
    assert "its member extra.npz/big.npy alone 800,128" in message


def test_an_array_header_declaring_more_than_the_file_holds_is_refused(logistic_file, tmp_path):
    # a header declaring 2**40 float64 (8 TiB) before 32 bytes of data: numpy would
    # allocate the declared array before reading it
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)}
    )
    coef = member_of(logistic_file, "coef_")
    path = rewrite(
        logistic_file, tmp_path / "header.skops", replace={coef: header.getvalue() + bytes(32)}
    )
    peak, message = peak_bytes_of(lambda: load(path))  # the default max_bytes
    assert f"array {coef} declares shape (1099511627776,) of float64" in message
    assert "(8,796,093,022,208 bytes) but holds 32 bytes of data" in message
    assert peak < 1_000_000


def test_max_bytes_argument(logistic_file):
    from daskfuse.persist import MAX_BYTES

    assert MAX_BYTES == 2**29
    assert load(logistic_file, max_bytes=None).coef_.shape == (1, 4)
    assert load(logistic_file, max_bytes=10_000).coef_.shape == (1, 4)
    with pytest.raises(ModelFileError, match="more than max_bytes=100 bytes"):
        load(logistic_file, max_bytes=100)
    with pytest.raises(ValueError, match="max_bytes must be a positive int or None"):
        load(logistic_file, max_bytes=0)
    with pytest.raises(TypeError, match="max_bytes must be a positive int or None"):
        load(logistic_file, max_bytes=True)


def test_a_tampered_coef_in_the_file_is_refused(logistic_file, tmp_path):
    coef = member_of(logistic_file, "coef_")
    path = rewrite(
        logistic_file, tmp_path / "coef.skops", replace={coef: npy_bytes(np.zeros((1, 3)))}
    )
    with pytest.raises(ModelFileError) as exc:
        load(path)
    assert str(exc.value) == (
        f"{path}: LogisticRegression.coef_ has shape (1, 3); expected 4 on its last axis "
        "(n_features_in_); the file is corrupt or was altered"
    )


def tamper(name, data):
    """A fitted model and a copy with one array attribute of a wrong shape."""
    X, y, _, _ = data
    y3 = np.arange(len(y)) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "coef-classes":
            model = SGDClassifier(random_state=0).fit(X, y3)
            model.coef_ = model.coef_[:2]
        elif name == "intercept":
            model = LogisticRegression().fit(X, y)
            model.intercept_ = np.zeros(2)
        elif name == "fused-coef":
            model = FusedClassifier(SGDClassifier(random_state=0), n_partitions=2).fit(X, y)
            model.fused_estimator_.coef_ = np.zeros((1, 5))
        elif name == "theta":
            model = GaussianNB().fit(X, y3)
            model.theta_ = model.theta_[:2]
        elif name == "mlp":
            model = MLPClassifier((3,), max_iter=5, random_state=0).fit(X, y)
            model.coefs_[1] = np.zeros((2, 1))
        elif name == "forest":
            model = FusedClassifier(
                RandomForestClassifier(n_estimators=2, random_state=0),
                fusion="trees",
                n_partitions=2,
            ).fit(X, y)
            forest = model.fused_estimator_
            forest.estimators_[1] = DecisionTreeClassifier(random_state=0).fit(X[:, :3], y)
        elif name == "components":
            model = PCA(n_components=2).fit(X)
            model.components_ = model.components_[:, :3]
        else:
            raise AssertionError(name)
    return model


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "coef-classes",
            "SGDClassifier.coef_ has shape (2, 4); expected 3 on its first axis (one row per "
            "class)",
        ),
        (
            "intercept",
            "LogisticRegression.intercept_ has shape (2,); expected (1,) (one per row of coef_, "
            "of shape (1, 4))",
        ),
        (
            "fused-coef",
            "SGDClassifier.coef_ has shape (1, 5); expected 4 on its last axis (n_features_in_)",
        ),
        (
            "theta",
            "GaussianNB.theta_ has shape (2, 4); expected 3 on its first axis (one per class)",
        ),
        (
            "mlp",
            "MLPClassifier.coefs_[1] has shape (2, 1); expected 3 on its first axis (the "
            "columns of coefs_[0])",
        ),
        (
            "forest",
            "RandomForestClassifier.estimators_[1].n_features_in_ is 3; expected 4 "
            "(the forest's n_features_in_)",
        ),
        ("components", "PCA.components_ has shape (2, 3); expected 4 on its last axis"),
    ],
)
def test_arrays_that_contradict_their_model_are_refused(data, tmp_path, case, message):
    path = tmp_path / f"{case}.skops"
    save(tamper(case, data), path)
    with pytest.raises(ModelFileError) as exc:
        load(path)
    assert f"{path}: {message}" in str(exc.value)


def test_a_corrupt_compressed_array_is_refused(logistic_file, tmp_path):
    coef = member_of(logistic_file, "coef_")
    path = rewrite(logistic_file, tmp_path / "deflated.skops", compression=zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        start = z.getinfo(coef).header_offset + 30 + len(coef)  # past the local header
    raw[start : start + 20] = bytes(b ^ 0xFF for b in raw[start : start + 20])
    path.write_bytes(raw)
    with pytest.raises(ModelFileError, match="not a model file written by daskfuse.save"):
        load(path)
