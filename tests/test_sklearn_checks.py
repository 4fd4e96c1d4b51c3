"""scikit-learn's estimator checks on the meta-estimators, across fusion families."""

import warnings

from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge, SGDRegressor
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer

EXPECTED_FAILED = {
    "FusedClassifier(RandomForestClassifier)": {
        "check_classifier_multioutput": (
            "the fused classifiers take one label column; multi-output "
            "classification is not supported"
        ),
    },
    "FusedClassifier(SVC)": {
        "check_fit_score_takes_y": (
            "partial_fit after a fit refuses with the reason where the strategy cannot "
            "continue a fit: the cascade SVM (fusion='auto' for SVC)"
        ),
    },
}


@parametrize_with_checks(
    [
        FusedClassifier(LogisticRegression()),
        FusedRegressor(Ridge()),
        FusedRegressor(SGDRegressor(random_state=0)),
        FusedClassifier(GaussianNB()),
        FusedClassifier(RandomForestClassifier(n_estimators=5, random_state=0)),
        FusedClassifier(SVC()),
        FusedRegressor(KNeighborsRegressor()),
        FusedTransformer(StandardScaler()),
        FusedTransformer(PCA(n_components=2)),
        FusedClusterer(KMeans(n_clusters=3, n_init=2, random_state=0)),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED.get(
        f"{type(est).__name__}({type(est.estimator).__name__})", {}
    ),
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        check(estimator)
