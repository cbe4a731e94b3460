"""Where poise keeps its state and how it reaches its services.

Everything poise and the libraries behind it write lives under ``POISE_HOME``
(default ``~/.poise``): the MLflow store and artifacts, Optuna studies, and later the
LangGraph checkpoints, the audit trail and the prediction log. Each location can be
pointed at a server instead (``POISE_TRACKING_URI=http://...``,
``POISE_OPTUNA_STORAGE=postgresql://...``) and the same code runs.

This module imports nothing heavy: the CLI reads settings before deciding what to load.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from poise.contracts import MAX_BUDGET_SECONDS


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    home: Path = Field(description="Root of everything poise writes (POISE_HOME).")
    tracking_uri: str = Field(description="MLflow tracking and registry store (POISE_TRACKING_URI).")
    artifact_root: str = Field(description="Where MLflow keeps artifacts (POISE_ARTIFACT_ROOT).")
    optuna_storage: str = Field(description="Optuna study storage (POISE_OPTUNA_STORAGE).")
    experiment: str = Field(default="poise", description="MLflow experiment of training runs (POISE_EXPERIMENT).")
    max_budget_seconds: float = Field(
        default=6 * 3600, gt=0, le=MAX_BUDGET_SECONDS,
        description="No search may be given more time than this (POISE_MAX_BUDGET_SECONDS).",
    )
    train_deployment: str | None = Field(
        default=None,
        description="Run training on a Prefect worker through this deployment, e.g. poise-train/train "
                    "(POISE_TRAIN_DEPLOYMENT); unset, training runs in this process.",
    )
    server_urls: list[str] = Field(
        default_factory=list,
        description="Model servers to tell about a promotion, comma-separated (POISE_SERVER_URLS); "
                    "servers started with `poise serve` on this machine are found without it.",
    )

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(_env("POISE_HOME", str(Path.home() / ".poise"))).expanduser().resolve()
        tracking_uri = _env("POISE_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        # a tracking server keeps the artifacts itself, where every machine can reach them
        served = tracking_uri.startswith(("http://", "https://"))
        return cls(
            home=home,
            tracking_uri=tracking_uri,
            artifact_root=_env("POISE_ARTIFACT_ROOT") or ("mlflow-artifacts:/" if served
                                                          else (home / "artifacts").as_uri()),
            optuna_storage=_env("POISE_OPTUNA_STORAGE") or f"sqlite:///{home / 'optuna.db'}",
            experiment=_env("POISE_EXPERIMENT", "poise"),
            max_budget_seconds=float(_env("POISE_MAX_BUDGET_SECONDS", str(6 * 3600))),
            train_deployment=_env("POISE_TRAIN_DEPLOYMENT"),
            server_urls=[u.strip() for u in (_env("POISE_SERVER_URLS") or "").split(",") if u.strip()],
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    _keep_libraries_inside_home(settings)
    return settings


def reset_settings() -> None:
    """Forget the cached settings (tests change ``POISE_HOME`` between cases)."""
    get_settings.cache_clear()


def _keep_libraries_inside_home(settings: Settings) -> None:
    """Stop the stack from writing into the working directory or ``~`` behind our back.

    Only sets what the user has not set themselves.
    """
    defaults = {
        "PREFECT_HOME": str(settings.home / "prefect"),
        "TORCHINDUCTOR_CACHE_DIR": str(settings.home / "cache" / "torch"),
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


#: Library settings that must be in the environment before the library is first imported.
_LIBRARY_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # against a tracking server MLflow prints a "View run" link per run to stdout, breaking --json output
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
    # Flow runs keep their full log in Prefect (the UI, `prefect flow-run logs`); the console shows
    # poise's own output, so a user's mistake is one clear message rather than Prefect's traceback.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "DO_NOT_TRACK": "true",
    # OpenMP threads that spin while waiting make HistGradientBoosting ~50x slower on a
    # busy machine (measured: 0.4 s alone, 33 s beside another process); passive waiting
    # costs little when the machine is idle. Must be set before sklearn is imported.
    "OMP_WAIT_POLICY": "PASSIVE",
}
for _name, _value in _LIBRARY_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
if "PREFECT_HOME" not in os.environ:  # Prefect reads it once, possibly before get_settings() runs
    os.environ["PREFECT_HOME"] = str(Path(_env("POISE_HOME", str(Path.home() / ".poise"))).expanduser() / "prefect")
