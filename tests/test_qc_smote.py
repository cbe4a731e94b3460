"""Tests for the QC-SMOTE over-sampler (poise.tools.qc_smote)."""

from collections import Counter

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy import sparse
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import NearestNeighbors

from poise.tools.qc_smote import QCSMOTE


def _binary(n=600, weights=(0.9,), n_features=6, seed=0):
    return make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=3,
        n_redundant=1,
        weights=list(weights),
        random_state=seed,
    )


def _overlapping_2d(seed=0, n_maj=1000, n_min=100):
    """Dense majority cloud with a minority cloud sitting partly inside it."""
    rng = np.random.RandomState(seed)
    X_maj = rng.normal(0.0, 1.0, size=(n_maj, 2))
    X_min = rng.normal([1.5, 0.0], 0.8, size=(n_min, 2))
    X = np.vstack([X_maj, X_min])
    y = np.r_[np.zeros(n_maj, dtype=int), np.ones(n_min, dtype=int)]
    return X, y


def _intrusion_and_clearance(X, y, X_syn, minority=1, k=5):
    """Share of synthetic rows whose k nearest original rows are mostly other
    classes, and mean distance of synthetic rows to the nearest other-class row."""
    idx = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(X_syn, return_distance=False)
    intrusion = float(((y[idx] != minority).mean(axis=1) > 0.5).mean())
    nn_other = NearestNeighbors(n_neighbors=1).fit(X[y != minority])
    clearance = float(nn_other.kneighbors(X_syn)[0][:, 0].mean())
    return intrusion, clearance


def test_auto_balances_and_keeps_original_rows_first():
    X, y = _binary()
    sampler = QCSMOTE(random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)

    counts = Counter(y_res)
    assert counts[0] == counts[1] == Counter(y)[0]
    np.testing.assert_array_equal(X_res[: len(X)], X)
    np.testing.assert_array_equal(y_res[: len(y)], y)
    assert np.all(y_res[len(y) :] == 1)

    n_new = len(X_res) - len(X)
    assert sampler.n_duplicated_ + sampler.n_interpolated_ == n_new
    assert 0 <= sampler.n_duplicated_ <= n_new
    assert set(sampler.overlap_) == {1}
    assert 0.0 <= sampler.overlap_[1] <= 1.0
    assert sampler.class_stats_[1]["n_generated"] == n_new
    assert np.isfinite(X_res).all()


@pytest.mark.parametrize("strategy", [0.5, {1: 200}, "minority"])
def test_counts_follow_sampling_strategy(strategy):
    X, y = _binary()
    _, y_qc = QCSMOTE(sampling_strategy=strategy, random_state=0).fit_resample(X, y)
    _, y_sm = SMOTE(sampling_strategy=strategy, random_state=0).fit_resample(X, y)
    assert Counter(y_qc) == Counter(y_sm)
    if strategy == 0.5:
        c = Counter(y_qc)
        assert c[1] == int(0.5 * c[0])


def test_deterministic_for_a_given_random_state():
    X, y = _binary()
    a = QCSMOTE(random_state=7).fit_resample(X, y)[0]
    b = QCSMOTE(random_state=7).fit_resample(X, y)[0]
    c = QCSMOTE(random_state=8).fit_resample(X, y)[0]
    np.testing.assert_array_equal(a, b)
    assert a.shape == c.shape
    assert not np.array_equal(a, c)


def test_pipeline_clone_and_params():
    X, y = make_classification(
        n_samples=800, n_features=6, n_informative=4, n_clusters_per_class=1, weights=[0.9], random_state=0
    )
    pipe = Pipeline([("resample", QCSMOTE(random_state=0)), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(X, y)
    assert pipe.predict_proba(X).shape == (len(X), 2)
    plain = LogisticRegression(max_iter=500).fit(X, y)
    # resampling inside the pipeline lifts the minority class (0.83 -> 0.91)
    assert balanced_accuracy_score(y, pipe.predict(X)) > balanced_accuracy_score(y, plain.predict(X)) + 0.03

    sampler = QCSMOTE(k_neighbors=3, n_candidates=4, purity_threshold="adaptive", random_state=1)
    cloned = clone(sampler)
    assert cloned.get_params() == sampler.get_params()
    assert not hasattr(cloned, "n_duplicated_")
    cloned.set_params(k_neighbors=4)
    assert cloned.get_params()["k_neighbors"] == 4
    np.testing.assert_array_equal(sampler.fit_resample(X, y)[0], clone(sampler).fit_resample(X, y)[0])

    with pytest.raises(ValueError):
        QCSMOTE(k_neighbors=0).fit_resample(X, y)
    with pytest.raises(ValueError):
        QCSMOTE(purity_threshold=1.5).fit_resample(X, y)


def test_fewer_intrusions_than_smote_on_overlapping_classes():
    X, y = _overlapping_2d(seed=0)
    n = len(X)
    X_sm, _ = SMOTE(random_state=0).fit_resample(X, y)
    sampler = QCSMOTE(random_state=0)
    X_qc, y_qc = sampler.fit_resample(X, y)
    assert Counter(y_qc)[1] == Counter(y)[0]

    intr_sm, clear_sm = _intrusion_and_clearance(X, y, X_sm[n:])
    intr_qc, clear_qc = _intrusion_and_clearance(X, y, X_qc[n:])
    # Measured at the time of writing: SMOTE 0.59, QC-SMOTE 0.27 (clearance
    # 0.107 vs 0.150).
    assert intr_sm > 0.4  # the data really overlap
    assert intr_qc <= 0.7 * intr_sm
    assert clear_qc > 1.2 * clear_sm
    assert sampler.overlap_[1] > 0.5


def test_duplicates_are_real_minority_rows():
    X, y = _overlapping_2d(seed=1)
    sampler = QCSMOTE(random_state=0)
    X_res, _ = sampler.fit_resample(X, y)
    assert sampler.n_duplicated_ > 0
    minority_rows = {tuple(row) for row in X[y == 1]}
    copies = sum(tuple(row) in minority_rows for row in X_res[len(X) :])
    assert copies >= sampler.n_duplicated_


def test_tiny_minority_of_three():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(0, 1, (50, 3)), rng.normal(3, 0.5, (3, 3))])
    y = np.r_[np.zeros(50, dtype=int), np.ones(3, dtype=int)]
    sampler = QCSMOTE(random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    assert Counter(y_res) == {0: 50, 1: 50}
    assert sampler.class_stats_[1]["k"] == 2
    assert np.isfinite(X_res).all()


def test_single_minority_sample_is_duplicated():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(0, 1, (20, 2)), [[5.0, 5.0]]])
    y = np.r_[np.zeros(20, dtype=int), [1]]
    sampler = QCSMOTE(random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    assert Counter(y_res) == {0: 20, 1: 20}
    np.testing.assert_array_equal(X_res[len(X) :], np.tile([5.0, 5.0], (19, 1)))
    assert sampler.n_duplicated_ == 19
    assert sampler.n_interpolated_ == 0


def test_multiclass_oversamples_every_requested_class():
    X, y = make_classification(
        n_samples=900,
        n_features=6,
        n_informative=4,
        n_classes=3,
        weights=[0.7, 0.2, 0.1],
        random_state=0,
    )
    sampler = QCSMOTE(random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    n_major = Counter(y).most_common(1)[0][1]
    assert Counter(y_res) == {0: n_major, 1: n_major, 2: n_major}
    assert set(sampler.overlap_) == {1, 2}
    np.testing.assert_array_equal(X_res[: len(X)], X)
    # generated rows come class by class in sampling_strategy_ order
    new_labels = y_res[len(y) :]
    assert list(dict.fromkeys(new_labels)) == list(sampler.sampling_strategy_)

    # a dict strategy only grows the requested class
    _, y_one = QCSMOTE(sampling_strategy={2: 300}, random_state=0).fit_resample(X, y)
    assert Counter(y_one) == {**Counter(y), 2: 300}


def test_identical_points_do_not_break():
    X = np.vstack([np.zeros((30, 3)), np.ones((5, 3))])
    y = np.r_[np.zeros(30, dtype=int), np.ones(5, dtype=int)]
    X_res, y_res = QCSMOTE(random_state=0).fit_resample(X, y)
    assert Counter(y_res) == {0: 30, 1: 30}
    np.testing.assert_array_equal(X_res[len(X) :], np.ones((25, 3)))


def test_integer_and_float32_inputs():
    X, y = _binary()
    X32 = X.astype(np.float32)
    X_res, _ = QCSMOTE(random_state=0).fit_resample(X32, y)
    assert X_res.dtype == np.float32
    Xi = np.round(X * 10).astype(np.int64)
    X_res, _ = QCSMOTE(random_state=0).fit_resample(Xi, y)
    assert X_res.dtype == np.float64
    np.testing.assert_array_equal(X_res[: len(Xi)], Xi)


def test_sparse_input_is_rejected():
    X, y = _binary()
    with pytest.raises(TypeError, match="sparse"):
        QCSMOTE().fit_resample(sparse.csr_matrix(X), y)


def test_single_class_target_raises_clear_error():
    X, _ = _binary(n=50)
    with pytest.raises(ValueError, match="more than 1 class"):
        QCSMOTE().fit_resample(X, np.zeros(len(X), dtype=int))


def test_approximate_search_matches_exact_search():
    X, y = make_classification(
        n_samples=3000, n_features=12, n_informative=5, weights=[0.93], class_sep=0.6, random_state=3
    )
    approx = QCSMOTE(random_state=0, neighbor_search="approx")
    exact = QCSMOTE(random_state=0, neighbor_search="exact")
    Xa, ya = approx.fit_resample(X, y)
    Xe, ye = exact.fit_resample(X, y)
    np.testing.assert_array_equal(ya, ye)
    same_rows = np.all(np.isclose(Xa, Xe), axis=1).mean()
    assert same_rows > 0.99
    n_new = len(Xa) - len(X)
    assert abs(approx.n_duplicated_ - exact.n_duplicated_) <= max(1, 0.01 * n_new)
