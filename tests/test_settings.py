"""Settings come from POISE_* variables: the places under POISE_HOME follow it, and a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from poise.errors import PoiseError
from poise.settings import Settings, get_settings, reset_settings

VARIABLES = ("POISE_HOME", "POISE_TRACKING_URI", "POISE_ARTIFACT_ROOT", "POISE_OPTUNA_STORAGE", "POISE_EXPERIMENT",
             "POISE_MAX_BUDGET_SECONDS", "POISE_TRAIN_DEPLOYMENT", "POISE_SERVER_URLS")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POISE_HOME", str(tmp_path / "home"))
    return monkeypatch


def test_every_store_lives_under_home_by_default(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = (tmp_path / "home").resolve()
    settings = Settings()
    assert settings.home == home
    assert settings.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.artifact_root == (home / "artifacts").as_uri()
    assert settings.optuna_storage == f"sqlite:///{home / 'optuna.db'}"
    assert (settings.experiment, settings.max_budget_seconds) == ("poise", 6 * 3600)
    assert (settings.train_deployment, settings.server_urls) == (None, [])


def test_a_tracking_server_keeps_the_artifacts_and_lists_are_comma_separated(env: pytest.MonkeyPatch) -> None:
    env.setenv("POISE_TRACKING_URI", "http://127.0.0.1:5000")
    env.setenv("POISE_SERVER_URLS", " http://a:8000, http://b:8000 ,")
    env.setenv("POISE_EXPERIMENT", "")  # empty counts as unset
    env.setenv("POISE_MAX_BUDGET_SECONDS", "60")
    settings = Settings()
    assert (settings.tracking_uri, settings.artifact_root) == ("http://127.0.0.1:5000", "mlflow-artifacts:/")
    assert settings.server_urls == ["http://a:8000", "http://b:8000"]
    assert (settings.experiment, settings.max_budget_seconds) == ("poise", 60.0)


@pytest.mark.parametrize("value", ["soon", "0", "1e12"])
def test_a_bad_value_names_its_variable(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("POISE_MAX_BUDGET_SECONDS", value)
    reset_settings()
    try:
        with pytest.raises(PoiseError, match=f"POISE_MAX_BUDGET_SECONDS='{value}'") as caught:
            get_settings()
        assert "unset it" in (caught.value.fix or "")
    finally:
        env.undo()
        reset_settings()
