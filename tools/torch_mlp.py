"""A scikit-learn compatible multilayer perceptron classifier written in PyTorch.

The estimator is tuned for imbalanced tabular data: besides the usual binary
cross-entropy it offers the focal loss (Lin et al., 2017) and the
class-balanced loss based on the effective number of samples (Cui et al.,
2019), accepts ``class_weight`` and ``sample_weight``, stops early on a
stratified validation split and respects a wall-clock budget (``max_time``)
so that an AutoML search never overruns its allowance.

Features are expected to be numeric, already encoded and scaled upstream (for
example by a ``ColumnTransformer`` earlier in the pipeline); they are cast to
``float32``. Missing values are rejected: impute them first.

A fitted estimator pickles to a small, device-independent payload (the
network weights are stored as NumPy arrays), so it can be saved with
``pickle``, ``joblib`` or ``cloudpickle`` inside a pipeline and loaded in
another process.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, Self, get_args, overload

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.5
    _sk_validate_data = None

__all__ = ["TorchMLPClassifier"]

Loss = Literal["bce", "focal", "class_balanced"]
# Rows pushed through the network at once at prediction time; bounds memory.
_PREDICT_CHUNK = 65_536


_NO_Y = "no_validation"


@overload
def _validate_X(estimator: TorchMLPClassifier, X: ArrayLike, *, reset: bool) -> np.ndarray: ...


@overload
def _validate_X(
    estimator: TorchMLPClassifier, X: ArrayLike, *, reset: bool, y: ArrayLike
) -> tuple[np.ndarray, np.ndarray]: ...


def _validate_X(
    estimator: TorchMLPClassifier, X: ArrayLike, *, reset: bool, y: ArrayLike = _NO_Y
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Validate X (and y when given) into a writeable C-contiguous float32 array.

    Finiteness is checked here rather than by scikit-learn so that the error
    message can tell the user what to do about it.
    """
    check_params = {"dtype": np.float32, "order": "C", "accept_sparse": False}
    if _sk_validate_data is not None:
        check_params["ensure_all_finite"] = False
        if isinstance(y, str) and y == _NO_Y:
            X = _sk_validate_data(estimator, X, reset=reset, **check_params)
        else:
            X, y = _sk_validate_data(estimator, X, y, reset=reset, **check_params)
    else:  # pragma: no cover - scikit-learn 1.5
        check_params["force_all_finite"] = False
        if isinstance(y, str) and y == _NO_Y:
            X = estimator._validate_data(X, reset=reset, **check_params)
        else:
            X, y = estimator._validate_data(X, y, reset=reset, **check_params)

    if not np.isfinite(X).all():
        if np.isnan(X).any():
            raise ValueError(
                "Input X contains NaN (missing values). TorchMLPClassifier cannot "
                "handle missing values: impute them first, e.g. with "
                "sklearn.impute.SimpleImputer earlier in the pipeline."
            )
        raise ValueError(
            "Input X contains infinite values (or values too large for float32). "
            "Clip or rescale the features before TorchMLPClassifier."
        )
    if not X.flags.writeable:
        X = X.copy()
    return X if isinstance(y, str) and y == _NO_Y else (X, y)


@contextlib.contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (``None``: leave it alone)."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    if previous == n_threads:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _effective_number_weights(counts: ArrayLike, beta: float) -> np.ndarray:
    """Class-balanced weights of Cui et al. (2019).

    ``w_c = (1 - beta) / (1 - beta ** n_c)``, rescaled so that the weights sum
    to the number of classes. ``beta = 0`` gives equal weights; as ``beta``
    approaches 1 the weights approach inverse class frequency.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if beta == 0.0:
        weights = np.ones_like(counts)
    else:
        # 1 - beta**n computed as -expm1(n * log(beta)) to keep precision
        # when beta is very close to one.
        weights = (1.0 - beta) / -np.expm1(counts * math.log(beta))
    return weights * (len(counts) / weights.sum())


class _MLPNetwork(nn.Module):
    """Linear -> ReLU -> Dropout blocks followed by a linear output layer."""

    def __init__(self, n_features: int, hidden_sizes: Sequence[int], dropout: float, n_outputs: int) -> None:
        super().__init__()
        layers = []
        width = n_features
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier for imbalanced tabular data (PyTorch).

    The network is a stack of ``Linear -> ReLU -> Dropout`` blocks followed by
    a linear output: one logit for a binary problem, one per class otherwise.
    No normalisation layer is used (inputs are expected to be scaled
    upstream), so any batch size, including 1, is safe. Training uses AdamW
    with mini-batches; the bias of the output layer starts at the (weighted)
    log prior odds of the classes, which speeds up learning when the positive
    class is rare.

    Parameters
    ----------
    hidden_sizes : tuple of int, default=(64, 32)
        Width of each hidden layer. An int means a single hidden layer; an
        empty tuple gives a (regularised) logistic regression.
    dropout : float, default=0.1
        Dropout probability after each hidden layer, in ``[0, 1)``.
    learning_rate : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW (decoupled) weight decay.
    batch_size : int, default=256
        Mini-batch size; capped at the number of training rows.
    max_epochs : int, default=200
        Maximum number of passes over the training rows.
    patience : int, default=10
        Early stopping: training stops after this many consecutive epochs
        without a decrease of the validation loss, and the weights of the
        best epoch are restored.
    validation_fraction : float or None, default=0.15
        Fraction of the rows held out, stratified by class, to monitor for
        early stopping. The monitored quantity is the training objective
        (the chosen loss with the same class / sample weighting) on the
        held-out rows, evaluated without dropout; the loss is smoother than
        a ranking metric such as average precision when positives are few.
        Every class keeps at least one row in training and puts at least one
        in validation. ``None`` or ``0`` disables early stopping, and so does
        data too small to split (a class with fewer than two rows): the
        network is then trained on all rows for ``max_epochs`` epochs and the
        final weights are kept.
    loss : {"bce", "focal", "class_balanced"}, default="bce"
        ``"bce"``: (binary) cross-entropy on logits. ``"focal"``: focal loss
        ``-(1 - p_t) ** focal_gamma * log(p_t)``, computed in log space from
        the logits for numerical stability. ``"class_balanced"``:
        cross-entropy with class weights from the effective number of
        samples, ``w_c ∝ (1 - beta) / (1 - beta ** n_c)`` where ``n_c`` counts
        the training rows of class ``c`` (weights normalised to sum to the
        number of classes).
    focal_gamma : float, default=2.0
        Focusing parameter of the focal loss (``0`` recovers cross-entropy).
    focal_alpha : float or None, default=None
        Binary problems only, used with ``loss="focal"``: weight ``alpha`` of
        the positive class (``classes_[1]``) and ``1 - alpha`` of the negative
        class. ``None`` means no alpha weighting.
    class_balanced_beta : float, default=0.999
        ``beta`` in ``[0, 1)`` for ``loss="class_balanced"``.
    class_weight : None, "balanced" or dict, default=None
        Per-class multipliers of the per-sample loss, as in scikit-learn:
        ``"balanced"`` uses ``n_samples / (n_classes * n_c)``; a dict maps
        labels to weights (missing labels get 1). Combined multiplicatively
        with ``sample_weight``, the class-balanced weights and ``focal_alpha``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, shuffling and the validation
        split. With an int, repeated fits give identical predictions (on the
        same machine and thread count). The global torch RNG state is saved
        and restored around training, so fitting has no RNG side effects.
    max_time : float or None, default=None
        Wall-clock budget in seconds for ``fit``. It is checked after every
        mini-batch; once exceeded, training stops (at least one mini-batch is
        always run) and, with early stopping, the best weights so far are
        restored.
    verbose : bool, default=False
        Print the training and validation loss after each epoch.
    n_threads : int or None, default=1
        Torch intra-op threads used during ``fit`` and prediction; the
        previous setting is restored afterwards. Networks this small gain
        nothing from more threads, and several threads per process are
        dramatically slower when parallel folds or other processes compete
        for the cores (about ten times slower on a busy two-core machine).
        One thread also makes results independent of the machine's core
        count. ``None`` leaves torch's global setting untouched.
    device : str, default="auto"
        Where ``fit`` trains: ``"auto"`` takes a CUDA GPU when torch sees one
        and the CPU otherwise; ``"cpu"`` or ``"cuda"`` (``"cuda:1"``, ...)
        choose. The fitted network always comes back to the CPU, so a model
        trained on a GPU predicts, pickles and serves without one.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels; for binary problems ``classes_[1]`` is the positive
        class.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, set only when X has string column names.
    network_ : torch.nn.Module
        The fitted network (CPU, in eval mode), holding the best weights.
    n_epochs_ : int
        Number of epochs run (a partial epoch interrupted by ``max_time``
        counts).
    best_epoch_ : int
        Epoch (1-based) whose weights were kept.
    best_loss_ : float
        Validation loss of the kept weights when early stopping was active,
        otherwise the training loss of the last epoch.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_loss_curve_ : list of float
        Validation loss after each epoch (empty without early stopping).
    early_stopping_ : bool
        Whether a validation split was used.
    stop_reason_ : str
        ``"early_stopping"``, ``"max_epochs"``, ``"max_time"`` or
        ``"non_finite_loss"``.
    class_weights_ : ndarray of shape (n_classes,)
        Effective per-class loss multipliers (``class_weight`` times the
        class-balanced weights times ``focal_alpha`` weighting), before
        ``sample_weight``.
    fit_time_ : float
        Wall-clock duration of ``fit`` in seconds.

    Notes
    -----
    Weighted losses are averaged as ``mean(w_i * loss_i)`` with the weights
    rescaled to have mean one over the training rows, so multiplying every
    weight by a constant does not change the fit.

    References
    ----------
    Lin, T.-Y., Goyal, P., Girshick, R., He, K. and Dollár, P. (2017).
    Focal Loss for Dense Object Detection. ICCV.

    Cui, Y., Jia, M., Lin, T.-Y., Song, Y. and Belongie, S. (2019).
    Class-Balanced Loss Based on Effective Number of Samples. CVPR.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=500, weights=[0.9], random_state=0)
    >>> clf = TorchMLPClassifier(loss="focal", random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: dict = {
        "hidden_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "patience": [Interval(numbers.Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left"), None],
        "loss": [StrOptions(set(get_args(Loss)))],
        "focal_gamma": [Interval(numbers.Real, 0, None, closed="left")],
        "focal_alpha": [Interval(numbers.Real, 0, 1, closed="both"), None],
        "class_balanced_beta": [Interval(numbers.Real, 0, 1, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "random_state": ["random_state"],
        "max_time": [Interval(numbers.Real, 0, None, closed="left"), None],
        "verbose": ["verbose"],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "device": [str],
    }

    def __init__(
        self,
        hidden_sizes: int | Sequence[int] = (64, 32),
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 10,
        validation_fraction: float | None = 0.15,
        loss: Loss = "bce",
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
        class_balanced_beta: float = 0.999,
        class_weight: Literal["balanced"] | Mapping[Any, float] | None = None,
        random_state: int | np.random.RandomState | None = None,
        max_time: float | None = None,
        verbose: bool = False,
        n_threads: int | None = 1,
        device: str = "auto",
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.class_balanced_beta = class_balanced_beta
        self.class_weight = class_weight
        self.random_state = random_state
        self.max_time = max_time
        self.verbose = verbose
        self.n_threads = n_threads
        self.device = device

    # ------------------------------------------------------------------
    # parameter checks
    # ------------------------------------------------------------------
    def _checked_hidden_sizes(self) -> tuple[int, ...]:
        """The layer widths as a tuple of ints; ``_parameter_constraints`` has checked the container only.

        scikit-learn's constraints cannot say "a tuple of positive ints", so the widths themselves
        are checked here, as ``MLPClassifier`` checks its ``hidden_layer_sizes``.
        """
        sizes = (self.hidden_sizes,) if isinstance(self.hidden_sizes, numbers.Integral) else tuple(self.hidden_sizes)
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_sizes must be a tuple of positive ints, got {self.hidden_sizes!r}.")
        return tuple(int(s) for s in sizes)

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features (NumPy array or pandas DataFrame), without
            missing values.
        y : array-like of shape (n_samples,)
            Class labels; at least two distinct classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-row weights multiplying the per-sample loss.

        Returns
        -------
        self : TorchMLPClassifier
            The fitted estimator.
        """
        start_time = time.perf_counter()
        hidden_sizes = self._checked_hidden_sizes()
        X, y = _validate_X(self, X, reset=True, y=y)
        check_classification_targets(y)
        self.classes_, y_encoded = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            label = self.classes_[0]
            label = label.item() if isinstance(label, np.generic) else label
            raise ValueError(
                f"y contains only one class ({label!r}); TorchMLPClassifier needs at least two classes to learn from."
            )
        if n_classes > 2 and self.loss == "focal" and self.focal_alpha is not None:
            raise ValueError(
                "focal_alpha weights the positive class and is only defined for "
                f"binary problems; y has {n_classes} classes. Use class_weight instead."
            )
        y_encoded = y_encoded.astype(np.int64).ravel()
        n_samples = X.shape[0]
        sample_weight = self._check_sample_weight(sample_weight, n_samples)

        rng = check_random_state(self.random_state)
        torch_seed = int(rng.randint(0, 2**31 - 1))
        train_idx, val_idx = self._split(y_encoded, n_classes, rng)

        # Per-class multipliers of the loss.
        if self.class_weight is None:
            class_mult = np.ones(n_classes)
        else:
            class_mult = compute_class_weight(self.class_weight, classes=self.classes_, y=np.asarray(y)).astype(
                np.float64
            )
        if self.loss == "class_balanced":
            counts = np.bincount(y_encoded[train_idx], minlength=n_classes)
            class_mult = class_mult * _effective_number_weights(np.maximum(counts, 1), float(self.class_balanced_beta))
        if self.loss == "focal" and self.focal_alpha is not None:
            alpha = float(self.focal_alpha)
            class_mult = class_mult * np.array([1.0 - alpha, alpha])
        self.class_weights_ = class_mult
        row_weight = sample_weight * class_mult[y_encoded]

        n_outputs = 1 if n_classes == 2 else n_classes
        self._net_config = {
            "n_features": int(X.shape[1]),
            "hidden_sizes": hidden_sizes,
            "dropout": float(self.dropout),
            "n_outputs": n_outputs,
        }
        deadline = None if self.max_time is None else start_time + float(self.max_time)

        # Fork the global RNG (and the GPU's, when one trains: dropout draws
        # from it) so that seeding leaves no trace outside fit.
        device = self._training_device()
        with _torch_threads(self.n_threads), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.default_generator.manual_seed(torch_seed)
            if device.type == "cuda":
                torch.cuda.manual_seed(torch_seed)
            shuffle_gen = torch.Generator().manual_seed(torch_seed + 1)
            self._train(X, y_encoded, row_weight, train_idx, val_idx, n_classes, shuffle_gen, deadline, device)
        self.fit_time_ = time.perf_counter() - start_time
        return self

    @staticmethod
    def _check_sample_weight(sample_weight: ArrayLike | None, n_samples: int) -> np.ndarray:
        if sample_weight is None:
            return np.ones(n_samples, dtype=np.float64)
        if isinstance(sample_weight, numbers.Real):
            sample_weight = np.full(n_samples, float(sample_weight))
        sample_weight = np.asarray(sample_weight, dtype=np.float64).ravel()
        if sample_weight.shape != (n_samples,):
            raise ValueError(f"sample_weight has {sample_weight.shape[0]} values but X has {n_samples} rows.")
        if not np.isfinite(sample_weight).all() or (sample_weight < 0).any():
            raise ValueError("sample_weight must be finite and non-negative.")
        if sample_weight.sum() <= 0:
            raise ValueError("sample_weight must not be all zero.")
        return sample_weight

    def _split(
        self, y: np.ndarray, n_classes: int, rng: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stratified train/validation indices; an empty validation set means no early stopping."""
        all_idx = np.arange(len(y))
        frac = self.validation_fraction
        counts = np.bincount(y, minlength=n_classes)
        if not frac or counts.min() < 2:
            return all_idx, all_idx[:0]
        train_parts, val_parts = [], []
        for c in range(n_classes):
            members = rng.permutation(np.flatnonzero(y == c))
            n_val = int(min(max(round(frac * len(members)), 1), len(members) - 1))
            val_parts.append(members[:n_val])
            train_parts.append(members[n_val:])
        return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))

    def _per_sample_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unreduced loss for each row (logits: (n, 1) binary or (n, K))."""
        if logits.shape[1] == 1:
            z = logits[:, 0]
            t = target.to(z.dtype)
            nll = F.binary_cross_entropy_with_logits(z, t, reduction="none")
            if self.loss != "focal" or self.focal_gamma == 0:
                return nll
            # log(1 - p_t) is the BCE against the flipped target, so the
            # modulating factor (1 - p_t) ** gamma is exp(-gamma * BCE(z, 1 - t)).
            log_one_minus_pt = -F.binary_cross_entropy_with_logits(z, 1.0 - t, reduction="none")
            return torch.exp(self.focal_gamma * log_one_minus_pt) * nll
        log_normaliser = torch.logsumexp(logits, dim=1)
        nll = log_normaliser - logits.gather(1, target[:, None])[:, 0]
        if self.loss != "focal" or self.focal_gamma == 0:
            return nll
        # log(1 - p_t) = logsumexp over the other classes - logsumexp over all:
        # finite with finite gradients even when p_t rounds to 1.
        others = logits.masked_fill(F.one_hot(target, logits.shape[1]).bool(), -math.inf)
        log_one_minus_pt = torch.logsumexp(others, dim=1) - log_normaliser
        return torch.exp(self.focal_gamma * log_one_minus_pt) * nll

    def _training_device(self) -> torch.device:
        """The torch device ``fit`` trains on: a GPU when ``device="auto"`` finds one, never required."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r}, but torch sees no CUDA GPU; use device='auto' or 'cpu'.")
        return device

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        row_weight: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        n_classes: int,
        shuffle_gen: torch.Generator,
        deadline: float | None,
        device: torch.device,
    ) -> None:
        cfg = self._net_config
        net = _MLPNetwork(cfg["n_features"], cfg["hidden_sizes"], cfg["dropout"], cfg["n_outputs"])

        w_train = row_weight[train_idx]
        if w_train.sum() <= 0:
            raise ValueError("sample_weight is zero on every training row; nothing to learn from.")
        # Start the output bias at the weighted log prior odds of the classes.
        prior = np.bincount(y[train_idx], weights=w_train, minlength=n_classes)
        prior = np.clip(prior / prior.sum(), 1e-6, 1.0)
        with torch.no_grad():
            if cfg["n_outputs"] == 1:
                net.head.bias.fill_(float(np.log(prior[1] / prior[0])))
            else:
                net.head.bias.copy_(torch.as_tensor(np.log(prior), dtype=torch.float32))

        net = net.to(device)
        X_train = torch.from_numpy(X[train_idx]).to(device)
        y_train = torch.from_numpy(y[train_idx]).to(device)
        wt_train = torch.from_numpy((w_train / w_train.mean()).astype(np.float32)).to(device)
        early_stopping = len(val_idx) > 0
        if early_stopping:
            X_val = torch.from_numpy(X[val_idx]).to(device)
            y_val = torch.from_numpy(y[val_idx]).to(device)
            w_val = row_weight[val_idx]
            if w_val.sum() <= 0:  # all validation weights zero: fall back to equal weights
                w_val = np.ones_like(w_val)
            wt_val = torch.from_numpy((w_val / w_val.sum()).astype(np.float32)).to(device)

        optimizer = torch.optim.AdamW(
            net.parameters(), lr=float(self.learning_rate), weight_decay=float(self.weight_decay)
        )
        n_train = len(train_idx)
        batch_size = int(min(self.batch_size, n_train))

        loss_curve, val_curve = [], []
        best_loss, best_epoch, best_state = math.inf, 0, None
        epochs_without_improvement = 0
        stop_reason = "max_epochs"
        epoch = 0
        for epoch in range(1, int(self.max_epochs) + 1):
            net.train()
            order = torch.randperm(n_train, generator=shuffle_gen).to(device)
            running, seen, timed_out = 0.0, 0, False
            for start in range(0, n_train, batch_size):
                idx = order[start : start + batch_size]
                per_row = self._per_sample_loss(net(X_train[idx]), y_train[idx])
                batch_loss = (per_row * wt_train[idx]).mean()
                optimizer.zero_grad()
                batch_loss.backward()
                optimizer.step()
                running += float(batch_loss.detach()) * len(idx)
                seen += len(idx)
                if deadline is not None and time.perf_counter() >= deadline:
                    timed_out = True
                    break
            train_loss = running / seen
            loss_curve.append(train_loss)
            if not math.isfinite(train_loss):
                stop_reason = "non_finite_loss"
                warnings.warn(
                    "TorchMLPClassifier: the training loss became non-finite at epoch "
                    f"{epoch}; stopping. Try a smaller learning_rate.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break

            if early_stopping:
                net.eval()
                with torch.no_grad():
                    val_loss = float((self._per_sample_loss(net(X_val), y_val) * wt_val).sum())
                val_curve.append(val_loss)
                if val_loss < best_loss:
                    best_loss, best_epoch = val_loss, epoch
                    best_state = copy.deepcopy(net.state_dict())
                    epochs_without_improvement = 0
                else:
                    epochs_without_improvement += 1
            else:
                best_loss, best_epoch = train_loss, epoch
            if self.verbose:
                msg = f"epoch {epoch:4d}  train loss {train_loss:.5f}"
                if early_stopping:
                    msg += f"  validation loss {val_loss:.5f}"
                print(msg, flush=True)
            if timed_out:
                stop_reason = "max_time"
                break
            if early_stopping and epochs_without_improvement >= int(self.patience):
                stop_reason = "early_stopping"
                break

        if early_stopping and best_state is not None:
            net.load_state_dict(best_state)
        net = net.to("cpu").eval()
        self.network_ = net
        self.n_epochs_ = epoch
        self.best_epoch_ = best_epoch
        self.best_loss_ = float(best_loss)
        self.loss_curve_ = loss_curve
        self.validation_loss_curve_ = val_curve
        self.early_stopping_ = early_stopping
        self.stop_reason_ = stop_reason

    # ------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------
    def _logits(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = _validate_X(self, X, reset=False)
        # Inference runs in float64 on a copy of the network: results then do
        # not depend (beyond ~1e-15) on how rows are batched, so one row
        # scored alone gets the same probability as inside a large batch.
        net = copy.deepcopy(self.network_).to(torch.float64).eval()
        outputs = []
        with _torch_threads(getattr(self, "n_threads", 1)), torch.inference_mode():
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                chunk = torch.from_numpy(X[start : start + _PREDICT_CHUNK]).to(torch.float64)
                outputs.append(net(chunk))
        return torch.cat(outputs).numpy()

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Raw network output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For binary problems the logit of ``classes_[1]``; otherwise one
            logit per class.
        """
        logits = self._logits(X)
        return logits[:, 0] if logits.shape[1] == 1 else logits

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype float64
            Probability of each class, columns ordered as ``classes_``.
        """
        logits = self._logits(X)
        if logits.shape[1] == 1:
            positive = expit(logits[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return softmax(logits, axis=1)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted class labels (for binary problems, threshold 0.5).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Labels taken from ``classes_``.
        """
        logits = self._logits(X)
        if logits.shape[1] == 1:
            return self.classes_[(logits[:, 0] > 0).astype(np.intp)]
        return self.classes_[np.argmax(logits, axis=1)]

    # ------------------------------------------------------------------
    # pickling
    # ------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state = dict(state)
        network = state.pop("network_", None)
        if network is not None:
            state["_network_weights"] = {
                name: tensor.detach().cpu().numpy().copy() for name, tensor in network.state_dict().items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weights = state.pop("_network_weights", None)
        super().__setstate__(state)
        if weights is not None:
            cfg = self._net_config
            # Building the layers draws initial weights from the global RNG;
            # fork it so that unpickling has no side effect on it.
            with torch.random.fork_rng(devices=[]):
                net = _MLPNetwork(cfg["n_features"], cfg["hidden_sizes"], cfg["dropout"], cfg["n_outputs"])
            net.load_state_dict({name: torch.from_numpy(w) for name, w in weights.items()})
            net.eval()
            self.network_ = net
