"""QC-SMOTE: a quality-controlled SMOTE variant for imbalanced classification.

This module provides :class:`QCSMOTE`, an imbalanced-learn compatible
over-sampler based on the method described in "QC-SMOTE: Quality-Controlled
SMOTE for Imbalanced Classification" (Upman & Gowda, 2026). The paper only
fixes the ingredients (trust scores, trust-weighted allocation, best-of-K
candidate selection by an interpolation purity/quality score, overlap-adaptive
interpolation range and strictness, duplication fallback); the concrete
formulas used here are one reading of it and are spelled out in the class
docstring.
"""

from __future__ import annotations

import numbers

import numpy as np
from imblearn.over_sampling.base import BaseOverSampler
from scipy import sparse
from sklearn.neighbors import BallTree, KDTree, NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from threadpoolctl import threadpool_limits

__all__ = ["QCSMOTE"]

# Weights of the three trust components (support, density, isolation).
_W_SUPPORT, _W_DENSITY, _W_ISOLATION = 0.4, 0.3, 0.3
# Weight of the clearance bonus added to IPQ when ranking candidates.
_W_CLEARANCE = 0.25
# A kept candidate must be at least this fraction of tau away from the
# nearest other-class point.
_MIN_CLEARANCE_FRACTION = 0.05
# Interpolation range never shrinks below this (it would collapse to copies).
_MIN_RANGE = 0.1
# Overlap cut points for the adaptive number of candidates (1, 3 or 5).
_OVERLAP_CUTS = (0.33, 0.66)


def _minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant vector maps to all ones."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if not np.isfinite(hi - lo) or hi - lo <= 0.0:
        return np.ones_like(values, dtype=float)
    return (values - lo) / (hi - lo)


def _drop_self(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query row's own index from a (k + 1)-neighbour result.

    Row ``i`` of ``idx`` is the neighbour list of training point ``i``. With
    duplicated points the point itself is not guaranteed to come first, so the
    own index is removed wherever it is; rows where it is missing lose their
    last (farthest) column instead.
    """
    n = idx.shape[0]
    keep = idx != np.arange(n)[:, None]
    missing = keep.all(axis=1)
    keep[missing, -1] = False
    return dist[keep].reshape(n, k), idx[keep].reshape(n, k)


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``weights``.

    Deterministic (Hamilton / largest-remainder method, ties broken by index);
    the counts always sum to ``total``.
    """
    weights = np.asarray(weights, dtype=float)
    wsum = weights.sum()
    if not np.isfinite(wsum) or wsum <= 0.0:
        weights = np.ones_like(weights)
        wsum = weights.sum()
    quotas = total * weights / wsum
    counts = np.floor(quotas).astype(np.int64)
    rest = int(total - counts.sum())
    if rest > 0:
        order = np.argsort(-(quotas - counts), kind="stable")
        counts[order[:rest]] += 1
    return counts


class QCSMOTE(BaseOverSampler):
    """Quality-controlled SMOTE over-sampler.

    Implements a reading of "QC-SMOTE: Quality-Controlled SMOTE for Imbalanced
    Classification" (Upman & Gowda, 2026). Compared with plain SMOTE it
    (i) spends the synthetic budget mostly on trustworthy minority samples,
    (ii) draws several interpolation candidates per synthetic sample and keeps
    the one that lies in the purest minority region, and (iii) falls back to
    duplicating a real minority sample when no candidate is pure enough, so
    it places far fewer synthetic points inside the other classes when the
    classes overlap.

    For every class ``c`` that ``sampling_strategy`` asks to grow, ``c`` is
    the "minority" and the union of all other classes is the "majority".
    With ``k`` the (possibly reduced) number of neighbours:

    * ``support(a)``: share of minority points among the ``k`` nearest
      neighbours of ``a`` in the whole data (``a`` itself excluded).
    * ``density(a)``: inverse mean distance of ``a`` to its ``k`` nearest
      minority neighbours, min-max scaled over the minority class.
    * ``isolation(a)``: distance of ``a`` to the nearest majority point,
      min-max scaled.
    * ``trust(a) = 0.4 support + 0.3 density + 0.3 isolation``. Synthetic
      counts per seed are proportional to trust (largest-remainder rounding,
      so totals are exact and the split is deterministic).
    * ``overlap = 1 - mean(support)``. The interpolation range is
      ``rho = max(0.1, 1 - overlap)``; the adaptive number of candidates is
      1, 3 or 5 for overlap below 0.33, below 0.66, or above.
    * A candidate is ``x = a + u (b - a)`` with ``u ~ U(0, rho)`` and ``b`` a
      random one of ``a``'s ``k`` minority neighbours.
    * ``IPQ(x) = (purity(x) + purity((a + x) / 2)) / 2`` where ``purity`` is
      the minority share among the ``k`` nearest original points.
      ``clearance(x)`` is the distance to the nearest majority point and
      ``tau`` the median nearest-majority distance of the minority points.
      Candidates are ranked by ``IPQ + 0.25 min(1, clearance / tau)``.
    * The best-ranked candidate among those with ``IPQ >= purity_threshold``
      and ``clearance >= 0.05 tau`` is kept. If none qualifies, the most
      trusted of ``a``'s minority neighbours (a real sample) is duplicated.

    Edge cases: a class with fewer than ``k_neighbors + 1`` samples uses
    ``k = n_class - 1``; a class with a single sample is duplicated. Sparse
    input is rejected with a ``TypeError``.

    Parameters
    ----------
    sampling_strategy : float, str, dict or callable, default='auto'
        Which classes to over-sample and to what size; same meaning as in
        :class:`imblearn.over_sampling.SMOTE` (a float is only valid for
        binary problems and is the desired minority/majority ratio).

    random_state : int, RandomState instance or None, default=None
        Controls the random choices (neighbour and interpolation gap of each
        candidate). Pass an int for reproducible output.

    k_neighbors : int, default=5
        Number of neighbours used for the support, density, purity and
        interpolation neighbourhoods.

    n_candidates : int or None, default=None
        Number of candidates drawn per synthetic sample. ``None`` adapts it
        to the measured class overlap (1, 3 or 5).

    purity_threshold : float in [0, 1] or "adaptive", default=0.3
        Minimum IPQ a candidate needs to be kept. ``"adaptive"`` makes
        selection stricter as the overlap grows:
        ``0.3 + 0.2 * overlap`` (0.3 for separated classes, up to 0.5).

    Attributes
    ----------
    sampling_strategy_ : dict
        Number of samples to generate per class (set by ``fit_resample``).

    n_duplicated_ : int
        Number of generated rows (over all classes) that are copies of real
        minority samples rather than interpolations.

    n_interpolated_ : int
        Number of generated rows that are interpolated candidates.

    overlap_ : dict
        Class label -> measured overlap ``1 - mean(support)`` for each
        over-sampled class.

    class_stats_ : dict
        Class label -> dict with the per-class details: ``n_generated``,
        ``n_duplicated``, ``overlap``, ``k``, ``n_candidates``,
        ``interpolation_range``, ``purity_threshold`` and ``tau``.

    n_features_in_ : int
        Number of features seen during ``fit_resample``.

    See Also
    --------
    imblearn.over_sampling.SMOTE : Plain SMOTE.
    imblearn.over_sampling.BorderlineSMOTE : Boundary-focused SMOTE variant.

    Examples
    --------
    >>> from collections import Counter
    >>> from sklearn.datasets import make_classification
    >>> from poise.tools.qc_smote import QCSMOTE
    >>> X, y = make_classification(n_samples=1000, weights=[0.9], random_state=0)
    >>> X_res, y_res = QCSMOTE(random_state=0).fit_resample(X, y)
    >>> sorted(Counter(y_res).values())
    [898, 898]
    """

    _parameter_constraints: dict = {
        **BaseOverSampler._parameter_constraints,
        "k_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_candidates": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "purity_threshold": [
            Interval(numbers.Real, 0, 1, closed="both"),
            StrOptions({"adaptive"}),
        ],
    }

    def __init__(
        self,
        *,
        sampling_strategy="auto",
        random_state=None,
        k_neighbors=5,
        n_candidates=None,
        purity_threshold=0.3,
    ):
        super().__init__(sampling_strategy=sampling_strategy)
        self.random_state = random_state
        self.k_neighbors = k_neighbors
        self.n_candidates = n_candidates
        self.purity_threshold = purity_threshold

    # ------------------------------------------------------------------ input
    def _check_X_y(self, X, y, accept_sparse=None):
        if sparse.issparse(X):
            raise TypeError(
                "QCSMOTE does not support sparse input; convert X to a dense array first (e.g. X.toarray())."
            )
        return super()._check_X_y(X, y, accept_sparse=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    # --------------------------------------------------------------- resample
    def _fit_resample(self, X, y):
        rng = check_random_state(self.random_state)
        X = np.asarray(X)
        X_float = X.astype(float, copy=False)
        n_total = X.shape[0]
        k_all = min(self.k_neighbors, n_total - 1)
        # One tree over the full data serves the support and purity queries
        # of every class.
        tree_all = _make_tree(X_float)

        X_parts, y_parts = [X.copy()], [y.copy()]
        self.overlap_ = {}
        self.class_stats_ = {}
        self.n_duplicated_ = 0
        self.n_interpolated_ = 0

        for class_label, n_samples in self.sampling_strategy_.items():
            if n_samples <= 0:
                continue
            X_new, stats = self._generate_class(X_float, y, class_label, int(n_samples), tree_all, k_all, rng)
            X_parts.append(X_new)
            y_parts.append(np.full(X_new.shape[0], class_label, dtype=y.dtype))
            self.n_duplicated_ += stats["n_duplicated"]
            self.n_interpolated_ += stats["n_generated"] - stats["n_duplicated"]
            self.overlap_[class_label] = stats["overlap"]
            self.class_stats_[class_label] = stats

        return np.vstack(X_parts), np.hstack(y_parts)

    def _generate_class(self, X, y, class_label, n_samples, tree_all, k_all, rng):
        is_min = y == class_label
        min_idx = np.flatnonzero(is_min)
        X_min = X[min_idx]
        X_maj = X[~is_min]
        n_min = X_min.shape[0]
        k = min(self.k_neighbors, n_min - 1)

        stats = {
            "n_generated": n_samples,
            "n_duplicated": n_samples,
            "overlap": float("nan"),
            "k": max(k, 0),
            "n_candidates": 0,
            "interpolation_range": 0.0,
            "purity_threshold": float("nan"),
            "tau": float("nan"),
        }
        if k < 1:
            # A single sample: nothing to interpolate with, duplicate it.
            return np.repeat(X_min, n_samples, axis=0), stats

        # -- support: minority share among the k nearest points of all data.
        dist_all, idx_all = tree_all.query(X_min, k=k_all + 1)
        # Radius that holds at least k_all + 1 data points around each seed.
        r_knn = dist_all[:, -1]
        keep = idx_all != min_idx[:, None]
        keep[keep.all(axis=1), -1] = False
        support = is_min[idx_all[keep].reshape(n_min, k_all)].mean(axis=1)

        # -- density: inverse mean distance to the k minority neighbours.
        dist_min, nbr_min = _drop_self(*_make_tree(X_min).query(X_min, k=k + 1), k)
        mean_d = dist_min.mean(axis=1)
        scale = float(np.mean(mean_d))
        eps = 1e-12 if scale <= 0 else 1e-9 * scale
        density = _minmax(1.0 / (mean_d + eps))

        # -- isolation: distance to the nearest majority point.
        if X_maj.shape[0] > 0:
            tree_maj = _make_tree(X_maj)
            d_maj = tree_maj.query(X_min, k=1)[0][:, 0]
            isolation = _minmax(d_maj)
            tau = float(np.median(d_maj))
        else:  # degenerate: nothing to keep away from
            tree_maj = None
            d_maj = np.zeros(n_min)
            isolation = np.ones(n_min)
            tau = 0.0

        trust = _W_SUPPORT * support + _W_DENSITY * density + _W_ISOLATION * isolation

        # -- overlap-adaptive knobs.
        overlap = float(1.0 - support.mean())
        rho = max(_MIN_RANGE, 1.0 - overlap)
        if self.n_candidates is not None:
            n_cand = int(self.n_candidates)
        elif overlap < _OVERLAP_CUTS[0]:
            n_cand = 1
        elif overlap < _OVERLAP_CUTS[1]:
            n_cand = 3
        else:
            n_cand = 5
        if self.purity_threshold == "adaptive":
            threshold = 0.3 + 0.2 * overlap
        else:
            threshold = float(self.purity_threshold)

        # -- allocation of the synthetic budget to seeds (seed-sorted slots).
        counts = _largest_remainder(trust, n_samples)
        seeds = np.repeat(np.arange(n_min), counts)

        # -- candidates: n_samples x n_cand, drawn in one batch.
        seeds_c = np.repeat(seeds, n_cand)
        partner = nbr_min[seeds_c, rng.randint(0, k, size=seeds_c.size)]
        gaps = rng.uniform(0.0, rho, size=seeds_c.size)[:, None]
        A = X_min[seeds_c]
        cand = A + gaps * (X_min[partner] - A)
        mid = 0.5 * (A + cand)

        # -- purity at candidate and midpoint, clearance of the candidate.
        # Rows are interleaved (cand, mid, cand, mid, ...) so that the
        # queries of one seed stay contiguous for the local search.
        queries = np.stack([cand, mid], axis=1).reshape(-1, X.shape[1])
        used = np.flatnonzero(counts)
        bounds = np.concatenate([[0], np.cumsum(counts[used] * n_cand * 2)])
        # Every query lies within rho * D_a of its seed a (D_a: distance from
        # a to its farthest minority neighbour). By the triangle inequality its
        # k-NN then lie within 2 rho D_a + r_knn(a) of a and its nearest
        # majority point within 2 rho D_a + d_maj(a): balls of these radii
        # around the seeds hold every neighbour the queries can need.
        reach = 2.0 * rho * dist_min[used].max(axis=1)
        slack = 1e-7 * (1.0 + reach + r_knn[used] + d_maj[used])
        purity, clearance = _neighbourhood_stats(
            queries,
            bounds,
            X_min[used],
            X,
            is_min,
            X_maj,
            tree_all,
            tree_maj,
            reach + r_knn[used] + slack,
            reach + d_maj[used] + slack,
            k_all,
        )
        ipq = 0.5 * (purity[0::2] + purity[1::2])
        clearance = clearance[0::2]

        if tau > 0:
            clear_term = np.minimum(1.0, clearance / tau)
        else:
            clear_term = (clearance > 0).astype(float)
        score = ipq + _W_CLEARANCE * clear_term
        valid = (ipq >= threshold) & (clearance >= _MIN_CLEARANCE_FRACTION * tau)

        # -- best valid candidate per synthetic slot.
        rows = np.arange(n_samples)
        score = np.where(valid, score, -np.inf).reshape(n_samples, n_cand)
        best = np.argmax(score, axis=1)
        accepted = valid.reshape(n_samples, n_cand)[rows, best]
        chosen = cand.reshape(n_samples, n_cand, -1)[rows, best]

        # -- fallback: duplicate the most trusted minority neighbour of the seed.
        most_trusted = nbr_min[np.arange(n_min), np.argmax(trust[nbr_min], axis=1)]
        X_new = np.where(accepted[:, None], chosen, X_min[most_trusted[seeds]])

        stats.update(
            n_duplicated=int(np.count_nonzero(~accepted)),
            overlap=overlap,
            n_candidates=n_cand,
            interpolation_range=rho,
            purity_threshold=threshold,
            tau=tau,
        )
        return X_new, stats


# ------------------------------------------------------------ neighbour search
# The purity/clearance queries dominate the run time. Two exact strategies are
# available and the cheaper one is picked from a rough cost model (seconds):
# a search restricted to balls around the seeds (fast when each seed owns
# many queries and its ball is small) or a plain search over all the data
# (KD-tree in few dimensions, brute force otherwise).
_LOCAL_CELLS_PER_S = 1e8  # query x reference pairs per second, local blocks
_BRUTE_CELLS_PER_S = 4e8  # same, scikit-learn brute force
_TREE_QUERY_S = 3e-6  # one k-NN query on a KD-tree in few dimensions
_TREE_MAX_FEATURES = 4
_BLOCK_OVERHEAD_S = 1e-4  # fixed cost of one local block
# Seeds whose balls are fetched from the trees in one call.
_SEED_BATCH = 512
# Consecutive seed groups are merged into one block while the block has fewer
# query rows than this and merging adds fewer distance pairs than
# _MERGE_MAX_EXTRA (fewer, larger matrix products instead of many tiny ones).
_MIN_BLOCK_ROWS = 256
_MERGE_MAX_EXTRA = 2e5
# Upper bound on query rows x reference points per distance matrix.
_MAX_CELLS = 1 << 22


def _make_tree(X):
    """KD-tree for few features, ball tree otherwise."""
    return KDTree(X) if X.shape[1] <= 15 else BallTree(X)


def _sq_dist(Q, P):
    d2 = (Q * Q).sum(axis=1)[:, None] - 2.0 * (Q @ P.T) + (P * P).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _neighbourhood_stats(queries, bounds, centres, X, is_min, X_maj, tree_all, tree_maj, r_all, r_maj, k):
    """Minority share among the ``k`` nearest rows of ``X`` for every query,
    and, for the even (candidate) rows, distance to the nearest row of
    ``X_maj`` (``inf`` without majority).

    ``queries[bounds[g]:bounds[g + 1]]`` belong to group ``g`` with centre
    ``centres[g]``; every ``k``-NN of those queries lies within ``r_all[g]``
    of the centre and their nearest majority row within ``r_maj[g]``.
    """
    n_q = queries.shape[0]
    n_groups = centres.shape[0]
    probe = np.unique(np.linspace(0, n_groups - 1, num=min(64, n_groups)).astype(np.int64))
    ball = tree_all.query_radius(centres[probe], r=r_all[probe], count_only=True).mean()
    ball_maj = 0.0
    if tree_maj is not None:
        ball_maj = tree_maj.query_radius(centres[probe], r=r_maj[probe], count_only=True).mean()
    local_cost = n_q * (ball + ball_maj) / _LOCAL_CELLS_PER_S + n_groups * _BLOCK_OVERHEAD_S
    if X.shape[1] <= _TREE_MAX_FEATURES:
        global_cost = 2 * n_q * _TREE_QUERY_S
    else:
        global_cost = n_q * (X.shape[0] + X_maj.shape[0]) / _BRUTE_CELLS_PER_S
    if global_cost < local_cost:
        return _global_stats(queries, X, is_min, X_maj, tree_all, tree_maj, k)
    # The local blocks are small matrix products; BLAS threading only adds
    # overhead (and oversubscription) there.
    with threadpool_limits(limits=1, user_api="blas"):
        return _local_stats(queries, bounds, centres, X, is_min, X_maj, tree_all, tree_maj, r_all, r_maj, k)


def _global_stats(queries, X, is_min, X_maj, tree_all, tree_maj, k):
    # Only the even rows (the candidates) need a clearance.
    clearance = np.full(queries.shape[0], np.inf)
    if X.shape[1] <= _TREE_MAX_FEATURES:
        idx = tree_all.query(queries, k=k, return_distance=False)
        if tree_maj is not None:
            clearance[0::2] = tree_maj.query(queries[0::2], k=1)[0][:, 0]
    else:
        idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors(queries, return_distance=False)
        if tree_maj is not None:
            nn_maj = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(X_maj)
            clearance[0::2] = nn_maj.kneighbors(queries[0::2])[0][:, 0]
    return is_min[idx].mean(axis=1), clearance


def _local_stats(queries, bounds, centres, X, is_min, X_maj, tree_all, tree_maj, r_all, r_maj, k):
    """Exact search restricted to the balls around the group centres.

    Any superset of a query's true neighbours that is a subset of the data
    gives the exact answer, so consecutive groups may share the union of
    their balls.
    """
    n_q = queries.shape[0]
    purity = np.empty(n_q)
    clearance = np.full(n_q, np.inf)
    n_groups = centres.shape[0]
    for b0 in range(0, n_groups, _SEED_BATCH):
        b1 = min(n_groups, b0 + _SEED_BATCH)
        balls = tree_all.query_radius(centres[b0:b1], r=r_all[b0:b1])
        balls_maj = None
        if tree_maj is not None:
            balls_maj = tree_maj.query_radius(centres[b0:b1], r=r_maj[b0:b1])

        def size(g, balls=balls, balls_maj=balls_maj, b0=b0):
            return len(balls[g - b0]) + (0 if balls_maj is None else len(balls_maj[g - b0]))

        g = b0
        while g < b1:
            h, n_rows, n_ref = g + 1, bounds[g + 1] - bounds[g], size(g)
            while h < b1 and n_rows < _MIN_BLOCK_ROWS:
                rows_h, ref_h = bounds[h + 1] - bounds[h], size(h)
                if n_rows * ref_h + rows_h * n_ref > _MERGE_MAX_EXTRA:
                    break
                n_rows, n_ref, h = n_rows + rows_h, n_ref + ref_h, h + 1
            ref = np.unique(np.concatenate(balls[g - b0 : h - b0]))
            ref_maj = None
            if balls_maj is not None:
                ref_maj = np.unique(np.concatenate(balls_maj[g - b0 : h - b0]))
            _fill_block(
                queries,
                bounds[g],
                bounds[h],
                centres[g],
                X[ref],
                is_min[ref],
                None if ref_maj is None else X_maj[ref_maj],
                tree_maj,
                k,
                purity,
                clearance,
            )
            g = h
    return purity, clearance


def _fill_block(queries, lo, hi, centre, P, P_is_min, P_maj, tree_maj, k, purity, clearance):
    # Centre the coordinates locally to keep the squared-distance expansion
    # numerically tight.
    P = P - centre
    if P_maj is not None and P_maj.shape[0] > 0:
        P_maj = P_maj - centre
    width = max(P.shape[0], 0 if P_maj is None else P_maj.shape[0], 1)
    step = max(1, _MAX_CELLS // width)
    kk = min(k, P.shape[0])
    for s in range(lo, hi, step):
        e = min(s + step, hi)
        Q = queries[s:e] - centre
        d2 = _sq_dist(Q, P)
        if kk < P.shape[0]:
            near = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
        else:
            near = np.broadcast_to(np.arange(P.shape[0]), (e - s, P.shape[0]))
        purity[s:e] = P_is_min[near].mean(axis=1)
        if P_maj is None:
            continue
        if P_maj.shape[0] > 0:
            clearance[s:e] = np.sqrt(_sq_dist(Q, P_maj).min(axis=1))
        else:  # cannot happen with a correct radius; stay exact anyway
            clearance[s:e] = tree_maj.query(queries[s:e], k=1)[0][:, 0]
