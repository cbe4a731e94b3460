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
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from poise.contracts import MAX_BUDGET_SECONDS
from poise.errors import PoiseError


class Settings(BaseSettings):
    """Read from ``POISE_*`` environment variables; an empty variable counts as unset."""

    model_config = SettingsConfigDict(env_prefix="POISE_", env_ignore_empty=True, frozen=True)

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
    server_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Model servers to tell about a promotion, comma-separated (POISE_SERVER_URLS); "
                    "servers started with `poise serve` on this machine are found without it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _places_under_home(cls, data: object) -> object:
        """Each store defaults to a place under ``home``, so pointing POISE_HOME elsewhere moves them all."""
        if not isinstance(data, dict):
            return data
        home = _home(data.get("home"))
        tracking_uri = data.get("tracking_uri") or f"sqlite:///{home / 'mlflow.db'}"
        # a tracking server keeps the artifacts itself, where every machine can reach them
        served = str(tracking_uri).startswith(("http://", "https://"))
        return {
            **data, "home": home, "tracking_uri": tracking_uri,
            "artifact_root": data.get("artifact_root") or ("mlflow-artifacts:/" if served
                                                           else (home / "artifacts").as_uri()),
            "optuna_storage": data.get("optuna_storage") or f"sqlite:///{home / 'optuna.db'}",
        }

    @field_validator("server_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [u.strip() for u in value.split(",") if u.strip()] if isinstance(value, str) else value


def _home(value: str | Path | None) -> Path:
    return Path(value or Path.home() / ".poise").expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise PoiseError(f"invalid settings: {env_problems(exc, Settings)}",
                         "correct the variable, or unset it for the default") from None
    settings.home.mkdir(parents=True, exist_ok=True)
    _keep_libraries_inside_home(settings)
    return settings


def reset_settings() -> None:
    """Forget the cached settings (tests change ``POISE_HOME`` between cases)."""
    get_settings.cache_clear()


def env_problems(exc: ValidationError, settings: type[BaseSettings]) -> str:
    """What is wrong, named by the environment variable that was set: that is what the user has to fix.

    The value of a key or token is never shown.
    """
    variables = _variables(settings)
    problems = []
    for error in exc.errors():
        where = str(error["loc"][0]) if error["loc"] else ""  # a field, or the alias it was read under
        field = next((f for f, names in variables.items() if where.upper() in names), where)
        set_here = [name for name in variables.get(field, []) if os.environ.get(name, "").strip()]
        found = (set_here[0], os.environ[set_here[0]]) if set_here else None
        if found is None:
            problems.append(f"{where}: {error['msg']}" if where else error["msg"])
        else:
            secret = any(word in field for word in ("key", "token"))
            problems.append(f"{found[0]}={'<hidden>' if secret else repr(found[1][:80])}: {error['msg']}")
    return "; ".join(problems)


def _variables(settings: type[BaseSettings]) -> dict[str, list[str]]:
    """Field → the environment variables it is read from (its alias choices, else prefix + name)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {field: [str(c).upper() for c in getattr(info.validation_alias, "choices", [])]
            or [f"{prefix}{field}".upper()] for field, info in settings.model_fields.items()}


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
    os.environ["PREFECT_HOME"] = str(_home(os.environ.get("POISE_HOME")) / "prefect")
