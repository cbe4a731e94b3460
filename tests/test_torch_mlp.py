"""Behaviour of the PyTorch MLP classifier (poise.tools.torch_mlp)."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from poise.tools.torch_mlp import TorchMLPClassifier


@pytest.fixture(scope="module")
def small_problem():
    X, y = make_classification(n_samples=400, n_features=6, weights=[0.85], random_state=3)
    return X, y


@pytest.fixture(scope="module")
def fitted_small(small_problem):
    X, y = small_problem
    return TorchMLPClassifier(max_epochs=30, random_state=0).fit(X, y)


# ---------------------------------------------------------------- sklearn basics
def test_string_labels_shapes_and_probabilities(small_problem):
    X, y = small_problem
    labels = np.where(y == 1, "yes", "no")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])

    clf = TorchMLPClassifier(max_epochs=30, random_state=0).fit(frame, labels)

    assert list(clf.classes_) == ["no", "yes"]
    assert clf.n_features_in_ == X.shape[1]
    assert list(clf.feature_names_in_) == list(frame.columns)
    proba = clf.predict_proba(frame)
    assert proba.shape == (len(X), 2)
    assert proba.dtype == np.float64
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predictions = clf.predict(frame)
    assert set(predictions) <= {"no", "yes"}
    np.testing.assert_array_equal(predictions, np.where(proba[:, 1] > 0.5, "yes", "no"))
    assert clf.decision_function(frame).shape == (len(X),)
    assert 1 <= clf.best_epoch_ <= clf.n_epochs_ <= 30
    assert len(clf.loss_curve_) == clf.n_epochs_


def test_wrong_number_of_features_at_predict_time(fitted_small, small_problem):
    X, _ = small_problem
    with pytest.raises(ValueError, match="features"):
        fitted_small.predict_proba(X[:, :3])


def test_learns_separable_imbalanced_problem():
    X, y = make_classification(
        n_samples=1500,
        n_features=20,
        n_informative=6,
        class_sep=1.5,
        flip_y=0.0,
        weights=[0.9, 0.1],
        random_state=0,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    clf = TorchMLPClassifier(random_state=0).fit(X_train, y_train)
    assert roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1]) > 0.95


def test_multiclass_is_supported():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0)
    clf = TorchMLPClassifier(max_epochs=50, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.7


# ---------------------------------------------------------------- reproducibility
def test_same_seed_same_model_other_seed_other_model(small_problem):
    X, y = small_problem

    def proba(seed):
        return TorchMLPClassifier(max_epochs=15, random_state=seed).fit(X, y).predict_proba(X)

    np.testing.assert_array_equal(proba(7), proba(7))
    assert not np.allclose(proba(7), proba(8))


def test_fit_leaves_global_torch_state_alone(small_problem):
    X, y = small_problem
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TorchMLPClassifier(max_epochs=3, random_state=0).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())
    assert torch.get_num_threads() == threads


def test_single_row_prediction_matches_batch(fitted_small, small_problem):
    X, _ = small_problem
    batch = fitted_small.predict_proba(X)
    one_by_one = np.vstack([fitted_small.predict_proba(X[i : i + 1]) for i in range(20)])
    np.testing.assert_allclose(one_by_one, batch[:20], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- pickle / clone
def test_pickle_round_trip_gives_identical_probabilities(fitted_small, small_problem):
    X, _ = small_problem
    payload = pickle.dumps(fitted_small)
    restored = pickle.loads(payload)
    np.testing.assert_array_equal(restored.predict_proba(X), fitted_small.predict_proba(X))
    # The network travels as plain arrays, not as a torch module.
    assert "network_" not in fitted_small.__getstate__()
    assert len(payload) < 100_000
    # The original is untouched by pickling.
    assert isinstance(fitted_small.network_, torch.nn.Module)


def test_clone_copies_parameters_not_fit(fitted_small):
    fitted_small.set_params(loss="focal", focal_alpha=0.25)
    try:
        copy = clone(fitted_small)
        assert copy.get_params() == fitted_small.get_params()
        assert not hasattr(copy, "network_")
        assert not hasattr(copy, "classes_")
    finally:
        fitted_small.set_params(loss="bce", focal_alpha=None)


# ---------------------------------------------------------------- imbalance handling
@pytest.mark.parametrize("loss", ["focal", "class_balanced"])
def test_alternative_losses_fit(loss, small_problem):
    X, y = small_problem
    clf = TorchMLPClassifier(loss=loss, max_epochs=30, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert np.all(np.isfinite(proba))
    assert roc_auc_score(y, proba[:, 1]) > 0.8


def test_weighting_and_focal_raise_minority_probability():
    # A hard, overlapping problem: plain BCE keeps the minority probability low.
    X, y = make_classification(
        n_samples=1000,
        n_features=10,
        n_informative=4,
        weights=[0.92],
        class_sep=0.6,
        flip_y=0.02,
        random_state=0,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)

    def minority_proba(**params):
        clf = TorchMLPClassifier(random_state=0, **params).fit(X_train, y_train)
        proba = clf.predict_proba(X_test)[:, 1]
        # (mean on minority rows, mean on all rows = predicted prevalence)
        return proba[y_test == 1].mean(), proba.mean()

    plain_rows, plain_all = minority_proba()
    for params in ({"class_weight": "balanced"}, {"loss": "class_balanced", "class_balanced_beta": 0.9999}):
        rows, overall = minority_proba(**params)
        assert rows > plain_rows + 0.1, params
        assert overall > plain_all + 0.1, params
    # Focal loss pulls every probability towards 0.5: the predicted minority
    # share rises, though not necessarily on the minority rows themselves.
    for params in ({"loss": "focal"}, {"loss": "focal", "focal_alpha": 0.75}):
        _, overall = minority_proba(**params)
        assert overall > plain_all + 0.05, params


def test_sample_weight_acts_like_class_weight(small_problem):
    X, y = small_problem
    by_class = TorchMLPClassifier(class_weight="balanced", max_epochs=15, random_state=0)
    by_row = TorchMLPClassifier(max_epochs=15, random_state=0)
    by_class.fit(X, y)
    by_row.fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_allclose(by_row.predict_proba(X), by_class.predict_proba(X), atol=1e-6)


# ---------------------------------------------------------------- stopping
def test_early_stopping_stops_before_max_epochs():
    X, y = make_classification(n_samples=600, n_features=5, class_sep=3.0, random_state=1)
    clf = TorchMLPClassifier(max_epochs=1000, patience=5, random_state=0).fit(X, y)
    assert clf.early_stopping_
    assert clf.stop_reason_ == "early_stopping"
    assert clf.n_epochs_ < 1000
    assert clf.best_epoch_ == clf.n_epochs_ - 5
    assert clf.best_loss_ == pytest.approx(min(clf.validation_loss_curve_))


def test_max_time_is_respected():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 20))
    y = (X[:, 0] + rng.normal(size=5000) > 1.5).astype(int)
    clf = TorchMLPClassifier(max_epochs=100_000, patience=100_000, max_time=0.5, random_state=0)
    start = time.perf_counter()
    clf.fit(X, y)
    assert time.perf_counter() - start < 3.0
    assert clf.stop_reason_ == "max_time"
    assert clf.predict_proba(X).shape == (5000, 2)


# ---------------------------------------------------------------- tiny and bad data
def test_tiny_data_with_three_positives():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.array([1] * 3 + [0] * 27)
    X[y == 1] += 2.0
    clf = TorchMLPClassifier(random_state=0).fit(X, y)
    assert clf.early_stopping_  # 2 positives train, 1 validates
    assert clf.predict_proba(X).shape == (30, 2)


def test_too_small_to_split_trains_on_everything():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 1))  # a single feature, too
    y = np.array([1] + [0] * 19)
    clf = TorchMLPClassifier(max_epochs=12, random_state=0).fit(X, y)
    assert not clf.early_stopping_
    assert clf.n_epochs_ == 12
    assert clf.stop_reason_ == "max_epochs"
    assert clf.validation_loss_curve_ == []


def test_single_class_is_a_clear_error():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="only one class"):
        TorchMLPClassifier().fit(X, np.ones(10))


def test_missing_values_ask_for_imputation(small_problem):
    X, y = small_problem
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="impute"):
        TorchMLPClassifier().fit(X, y)


@pytest.mark.parametrize(
    "params",
    [{"loss": "hinge"}, {"dropout": 1.0}, {"class_weight": "auto"}, {"hidden_sizes": (0,)}],
)
def test_bad_parameters_are_rejected_at_fit(params, small_problem):
    X, y = small_problem
    clf = TorchMLPClassifier(**params)  # no validation in __init__
    with pytest.raises(ValueError, match=next(iter(params))):
        clf.fit(X, y)


def test_parameters_are_checked_the_scikit_learn_way(small_problem):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = small_problem
    with pytest.raises(InvalidParameterError, match="'loss' parameter of TorchMLPClassifier"):
        TorchMLPClassifier(loss="hinge").fit(X, y)
    with pytest.raises(InvalidParameterError, match="'max_time'"):
        TorchMLPClassifier(max_time=-1.0).fit(X, y)
    # every parameter has a constraint, and a value of the wrong type is refused with scikit-learn's message
    check_param_validation("TorchMLPClassifier", TorchMLPClassifier(max_epochs=2))


# ---------------------------------------------------------------- scikit-learn's own checks
def _expected_failures(estimator):
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "mini-batch SGD: repeating a row is not the same as weighting it"
        ),
    }


@parametrize_with_checks(
    [TorchMLPClassifier(hidden_sizes=(16,), learning_rate=0.01, max_epochs=20, random_state=0)],
    expected_failed_checks=_expected_failures,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_trains_on_a_gpu_when_there_is_one_and_never_needs_it(small_problem):
    X, y = small_problem
    clf = TorchMLPClassifier(max_epochs=3, random_state=0).fit(X, y)  # device="auto"
    assert next(clf.network_.parameters()).device.type == "cpu"  # comes back to the CPU to predict and pickle
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            TorchMLPClassifier(max_epochs=3, device="cuda").fit(X, y)
