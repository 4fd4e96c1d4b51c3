"""scikit-learn's estimator checks on the meta-estimators."""

import warnings

from sklearn.linear_model import LogisticRegression, Ridge, SGDRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskfuse import FusedClassifier, FusedRegressor

EXPECTED_FAILED = {}


@parametrize_with_checks(
    [
        FusedClassifier(LogisticRegression()),
        FusedRegressor(Ridge()),
        FusedRegressor(SGDRegressor(random_state=0)),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED.get(type(est).__name__, {}),
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        check(estimator)
