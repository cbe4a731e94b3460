"""The served version and its hot swap: follow ``@champion`` without a restart and without a mixed answer.

The served model is one immutable ``Serving`` object behind one attribute: a request reads it
once and uses that version from start to finish, so a swap can never mix two versions in one
answer. A background thread polls ``@champion``; when it moves, the new version is loaded off
the request path and only then swapped in. If it fails to load, the old version keeps serving
and ``last_swap_error`` (shown by ``/health``) says why.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from poise.deploy.schemas import ModelInfo, SwapError
from poise.errors import PoiseError
from poise.registry import versions

log = logging.getLogger("poise.deploy")

#: A version that failed to load is tried again by the poller after this long (``/admin/reload`` retries at once).
RETRY_FAILED_SECONDS = 30.0


@dataclass(frozen=True)
class Serving:
    """One loaded version and what ``/model`` says about it: swapped as a whole, never piece by piece."""

    loaded: versions.LoadedModel
    info: ModelInfo
    loaded_at: str

    @property
    def version(self) -> str:
        return self.loaded.version


def load_version(name: str, version: str) -> Serving:
    """Load one version completely (model and metadata) before anything may serve it."""
    loaded = versions.load(f"{name}:{version}")
    return Serving(loaded, _model_info(loaded), now())


def _model_info(loaded: versions.LoadedModel) -> ModelInfo:
    """What ``/model`` reports, read once at load time so the endpoint never touches the registry."""
    facts = versions.describe(loaded.name, loaded.version)
    card = loaded.card
    return ModelInfo(
        name=loaded.name, version=loaded.version, alias=versions.CHAMPION,
        created_at=facts["created_at"], trained_at=facts["trained_at"], run_id=facts["run_id"],
        holdout_metrics=facts["holdout_metrics"], metric=card.metric or facts["tags"].get("metric"),
        threshold=card.threshold, strategy=card.strategy, estimator=card.estimator,
        target=card.target, positive_label=card.positive_label, negative_label=card.negative_label,
        features=card.features, numeric=card.numeric, categorical=card.categorical, datetime=card.datetime,
    )


class ModelHolder:
    """Holds the served version and keeps it in step with ``@champion``.

    ``current`` is replaced by one assignment (atomic in Python), so a request that read it keeps
    a complete, consistent version even while the next one is being loaded or swapped in.
    """

    def __init__(self, name: str, poll_seconds: float = 2.0, retry_seconds: float = RETRY_FAILED_SECONDS) -> None:
        self.name = name
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.current: Serving = _first_load(name)
        self.last_swap_error: SwapError | None = None
        self.last_checked_at: str | None = None
        self._failed: tuple[str | None, float] | None = None
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=f"poise-swap-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_seconds))
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check()
            except Exception:  # the poller must outlive any surprise; check() records the expected ones
                log.exception("checking @champion of %s failed", self.name)

    def check(self, *, force: bool = False) -> bool:
        """Swap to ``@champion`` if it moved; True if a new version now serves.

        A version that failed to load is retried only after ``retry_seconds`` unless ``force``:
        reloading a broken model every poll would spend the CPU the requests need.
        """
        with self._check_lock:
            self.last_checked_at = now()
            try:
                wanted = versions.alias_version(self.name, versions.CHAMPION)
            except Exception as exc:
                self._failed_to(None, f"could not read @champion from the registry: {exc}")
                return False
            serving = self.current.version
            if wanted is None:
                self._failed_to(None, f"model {self.name!r} has no @champion any more; still serving v{serving}")
                return False
            if wanted == serving:
                self.last_swap_error, self._failed = None, None
                return False
            if not force and self._recently_failed(wanted):
                return False
            try:
                fresh = load_version(self.name, wanted)
            except Exception as exc:
                log.exception("could not load %s v%s; v%s keeps serving", self.name, wanted, serving)
                self._failed_to(wanted, f"could not load v{wanted} ({type(exc).__name__}: {exc}); "
                                        f"v{serving} keeps serving")
                return False
            self.current = fresh
            self.last_swap_error, self._failed = None, None
            log.info("%s: now serving v%s (was v%s)", self.name, wanted, serving)
            return True

    def _recently_failed(self, version: str) -> bool:
        return (self._failed is not None and self._failed[0] == version
                and time.monotonic() - self._failed[1] < self.retry_seconds)

    def _failed_to(self, version: str | None, message: str) -> None:
        self._failed = (version, time.monotonic())
        self.last_swap_error = SwapError(version=version, error=message, at=now())


def _first_load(name: str) -> Serving:
    """The version to start with; unlike a failed swap there is nothing to fall back on, so it is an error."""
    version = _champion_or_error(name)
    try:
        return load_version(name, version)
    except Exception as exc:
        raise PoiseError(f"could not load {name} v{version} (its @champion): {type(exc).__name__}: {exc}",
                         f"roll back with `poise rollback {name}` or promote a working version") from exc


def _champion_or_error(name: str) -> str:
    version = versions.alias_version(name, versions.CHAMPION)
    if version is None:
        raise PoiseError(f"model {name!r} has no @champion to serve",
                         f"promote a version first: poise promote {name} VERSION")
    return version


def pick_model(model_name: str | None) -> str:
    """The model to serve: the one named, or the only one registered."""
    if model_name:
        if "@" in model_name or ":" in model_name:
            raise PoiseError(f"{model_name!r} names a version; the server always follows @champion",
                             "pass the bare model name, and promote the version you want served")
        name, _ = versions.resolve(model_name)  # a clear error, listing the known names, if unknown
        return name
    names = [entry["name"] for entry in versions.list_models()]
    if len(names) == 1:
        return names[0]
    if not names:
        raise PoiseError("there is no registered model to serve", "train one first: poise train DATA --target COLUMN")
    raise PoiseError(f"{len(names)} registered models ({', '.join(sorted(names))}); which one should be served?",
                     "name it: poise serve --model NAME")


def now() -> str:
    """The time stamps the server reports: ISO 8601, UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
