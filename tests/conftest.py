"""Every test session gets its own POISE_HOME: nothing touches ~/.poise or the working directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
AI4I = ROOT / "poise" / "examples" / "ai4i2020.csv"
DATA = ROOT / "benchmarks" / "data"

# Before any test module is collected: the libraries (Prefect above all) read their homes on import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HOME = Path(tempfile.mkdtemp(prefix="poise-tests-"))
os.environ["POISE_HOME"] = str(HOME)
os.environ["PREFECT_HOME"] = str(HOME / "prefect")


@pytest.fixture(scope="session", autouse=True)
def poise_home() -> Iterator[Path]:
    from poise.settings import reset_settings

    reset_settings()
    yield HOME
    shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """Small mixed-type data with missing values, categoricals and string labels."""
    rng = np.random.default_rng(0)
    n = 400
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    logit = 2.5 * x1 - 1.5 * x2 + (colour == "red") * 1.5 - 3.0
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "label": label})
    frame.loc[rng.choice(n, 30, replace=False), "x2"] = np.nan
    frame.loc[rng.choice(n, 20, replace=False), "colour"] = np.nan
    return frame
