"""Model versions and aliases in the MLflow registry.

Every training registers a new version and points ``@challenger`` at it. Promotion is an
alias move: ``@champion`` goes to the new version and the old champion keeps ``@previous``,
so a rollback is one more alias move. Nothing is ever half-deployed.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from poise.contracts import model_name_problem
from poise.errors import ModelNotFoundError, PoiseError
from poise.registry import pyfunc_entry
from poise.registry.model import Classifier, ModelCard, PoiseModel, save_artifacts
from poise.registry.tracking import SearchRun

if TYPE_CHECKING:  # MLflow loads when the registry is used, not with this module
    import numpy as np
    from mlflow import MlflowClient

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"

#: The reference table stored with each version: its feature columns, then these.
REFERENCE_FILE = "reference.parquet"
LABEL, PROBA, PART = "__label__", "__proba__", "__part__"  # 0/1 label, score, "train" or "holdout"
ROW = "__row__"  # the row's key (``poise.tools.data.row_keys``): how a version knows its holdout rows again
REFERENCE_COLUMNS = (LABEL, PROBA, PART, ROW)
_REF = re.compile(r"^(?P<name>[^@:]+?)(?:@(?P<alias>[\w-]+)|:(?P<version>\d+))?$")

#: What a registered model needs to be loaded elsewhere (poise itself must be importable too).
_RUNTIME = ("scikit-learn", "imbalanced-learn", "pandas", "numpy", "joblib", "mlflow", "pydantic")


def model_requirements(card: ModelCard) -> list[str]:
    uses_torch = any(label.endswith("/mlp") for label in card.members) or card.estimator == "mlp"
    names = [*_RUNTIME, "torch"] if uses_torch else list(_RUNTIME)
    return [f"{name}=={metadata.version(name)}" for name in names]


class VersionMismatchWarning(UserWarning):
    """A model loaded beside other versions of the packages it was trained with: its answers may differ."""


def version_mismatches(requirements: list[str]) -> list[str]:
    """``name (trained with X, here Y)`` for each pinned requirement this environment does not match."""
    found = []
    for requirement in requirements:
        name, _, wanted = requirement.partition("==")
        try:
            here = metadata.version(name)
        except metadata.PackageNotFoundError:
            here = "not installed"
        if wanted and here != wanted:
            found.append(f"{name} (trained with {wanted}, here {here})")
    return found


def warm_requirement_checks() -> None:
    """Build MLflow's map of installed packages now, in the background, so logging a model does not wait for it.

    ``log_model`` checks its pip requirements against every installed distribution; building that map
    reads the metadata of the whole environment (seconds in a large one) and is cached for the process.
    Best effort: the map lives in a private MLflow module, and without it logging only takes longer.
    """
    import threading

    def warm() -> None:
        try:
            from mlflow.utils import requirements_utils

            requirements_utils._init_packages_to_modules_map()
        except Exception:  # an optimisation only: without it, logging a model takes longer
            pass

    threading.Thread(target=warm, name="poise-warm-requirements", daemon=True).start()


def register_model(
    run: SearchRun,
    model_name: str,
    pipeline: Classifier,
    card: ModelCard,
    input_example: pd.DataFrame,
    tags: dict[str, str],
    reference: pd.DataFrame | None = None,
) -> str:
    """Log the pipeline as a pyfunc into the search run, register a version, tag it @challenger.

    ``reference`` (the rows the model learned from and was judged on, with labels and scores; see
    ``REFERENCE_COLUMNS``) is stored beside it: what the drift monitor compares live data with.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if reference is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / REFERENCE_FILE
            reference.to_parquet(path, index=False)
            mlflow.MlflowClient().log_artifact(run.run_id, str(path))
    from mlflow.models import infer_signature

    card = card.model_copy(update={"requirements": model_requirements(card)})
    example = input_example[card.features].head(5)
    output = PoiseModel()
    output.pipeline, output.card = pipeline, card
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # integer-column hints: serving coerces numbers itself
        signature = infer_signature(example, output.predict(None, example))
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run.run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(pyfunc_entry.__file__)),  # model from code: nothing pickled but the pipeline
            artifacts=save_artifacts(pipeline, card, Path(tmp)),
            signature=signature,
            input_example=example,
            pip_requirements=card.requirements,
        )
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="Registered by poise.")
    version = str(
        client.create_model_version(
            model_name, info.model_uri, run_id=run.run_id, tags=tags, model_id=info.model_id
        ).version
    )
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    return version


def promote(model_name: str, version: str | int) -> str | None:
    """Make ``version`` the champion; the old champion becomes @previous. Returns the old champion's version."""
    import mlflow

    client = mlflow.MlflowClient()
    version = str(version)
    _version_or_error(client, check_name(model_name), version)
    current = alias_version(model_name, CHAMPION)
    if current == version:
        return current
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, current)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    if alias_version(model_name, CHALLENGER) == version:
        client.delete_registered_model_alias(model_name, CHALLENGER)
    return current


def rollback(model_name: str) -> tuple[str, str]:
    """Point ``@champion`` at ``@previous`` and ``@previous`` at the old champion.

    Returns ``(from_version, to_version)``. Champion moves first: a server polling in between
    sees the version it is meant to serve, never a missing alias.
    """
    import mlflow

    resolve(model_name)  # a clear error for an unknown name
    current = alias_version(model_name, CHAMPION)
    previous = alias_version(model_name, PREVIOUS)
    if current is None:
        raise ModelNotFoundError(f"model {model_name!r} has no @champion to roll back from",
                                 f"promote a version first: poise promote {model_name} VERSION")
    if previous is None:
        raise ModelNotFoundError(
            f"model {model_name!r} has no @previous version to roll back to",
            f"a rollback needs an earlier champion; pick a version yourself: poise promote {model_name} VERSION",
        )
    if previous == current:
        raise ModelNotFoundError(f"@previous and @champion of {model_name!r} are both v{current}",
                                 f"pick the version to serve: poise promote {model_name} VERSION")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(model_name, CHAMPION, previous)
    client.set_registered_model_alias(model_name, PREVIOUS, current)
    return current, previous


def alias_version(model_name: str, alias: str) -> str | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def resolve(ref: str) -> tuple[str, str]:
    """``NAME``, ``NAME@alias`` or ``NAME:version`` → (name, version). A bare name means @champion,
    else the newest version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_ref(ref)
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        known = [m.name for m in client.search_registered_models()]
        raise ModelNotFoundError(
            f"no registered model named {name!r}",
            f"registered models: {', '.join(known)}" if known else "train one first with `poise train`",
        ) from None
    if version is not None:
        _version_or_error(client, name, version)
        return name, version
    if alias is not None:
        found = alias_version(name, alias)
        if found is None:
            aliases = sorted(client.get_registered_model(name).aliases)
            raise ModelNotFoundError(
                f"model {name!r} has no alias @{alias}",
                f"its aliases: {', '.join('@' + a for a in aliases)}" if aliases else "use NAME:VERSION",
            )
        return name, found
    found = alias_version(name, CHAMPION)
    if found is None:
        versions = client.search_model_versions(f"name='{name}'")
        found = str(max(int(v.version) for v in versions))
    return name, found


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``NAME``, ``NAME@alias`` or ``NAME:version`` → (name, alias, version), the name checked; no registry call."""
    match = _REF.match(ref.strip())
    if not match:
        raise ModelNotFoundError(f"{ref!r} is not a model reference", "use NAME, NAME@ALIAS or NAME:VERSION")
    return check_name(match["name"]), match["alias"], match["version"]


def check_name(name: str) -> str:
    """``name`` if it can be a registered model's name, else an error naming the bad character and the rule."""
    problem = model_name_problem(name)
    if problem:
        raise PoiseError(problem, "see `poise models` for the registered names")
    return name


def _version_or_error(client: MlflowClient, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise ModelNotFoundError(f"model {name!r} has no version {version}", "see `poise models`") from None


@dataclass
class LoadedModel:
    name: str
    version: str
    card: ModelCard
    model: PoiseModel

    def predict(self, frame: pd.DataFrame, *, allow_extra: bool = False) -> pd.DataFrame:
        """``proba`` and ``pred`` for every row, after checking the columns."""
        return self.model.score(self.card.prepare(frame, allow_extra=allow_extra))


def load(ref: str) -> LoadedModel:
    """Load a registered version (``NAME``, ``NAME@alias`` or ``NAME:version``)."""
    import mlflow

    name, version = resolve(ref)
    # MLflow's own requirement check reads the metadata of every installed package (seconds); the
    # card's pinned versions say the same in milliseconds
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}", suppress_warnings=True)
    model: PoiseModel = pyfunc.unwrap_python_model()
    mismatched = version_mismatches(model.card.requirements)
    if mismatched:
        warnings.warn(f"{name} v{version} was trained with other package versions: {'; '.join(mismatched)}; "
                      "its scores may differ (retrain here, or install those versions)", VersionMismatchWarning,
                      stacklevel=2)
    return LoadedModel(name, version, model.card, model)


def describe(model_name: str, version: str) -> dict[str, Any]:
    """One version's registry facts: run, creation and training times, and its holdout metrics (from its tags)."""
    import mlflow

    client = mlflow.MlflowClient()
    entry = client.get_model_version(model_name, version)
    tags = dict(entry.tags)
    metrics = {}
    for key, value in tags.items():
        if key.startswith("holdout."):
            try:
                metrics[key.removeprefix("holdout.")] = float(value)
            except ValueError:
                continue
    trained_at = None
    if entry.run_id:
        info = client.get_run(entry.run_id).info
        trained_at = _iso_ms(info.end_time or info.start_time)
    return {"run_id": entry.run_id, "created_at": _iso_ms(entry.creation_timestamp), "trained_at": trained_at,
            "tags": tags, "holdout_metrics": metrics}


def reference(model_name: str, version: str) -> pd.DataFrame:
    """The rows ``version`` learned from (``__part__`` "train", scored out of fold) and was judged on ("holdout")."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    run_id = describe(model_name, version)["run_id"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(download_artifacts(run_id=run_id, artifact_path=REFERENCE_FILE, dst_path=tmp))
    except (MlflowException, OSError):
        raise ModelNotFoundError(
            f"{model_name} v{version} has no reference data to compare live data with",
            "retrain it with this version of poise (each new version stores its reference)",
        ) from None


def out_of_sample(loaded: LoadedModel, keys: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, int]:
    """``proba``, ``loaded``'s scores of rows keyed ``keys`` (``poise.tools.data.row_keys``), with each row the
    version trained on after its holdout judged it replaced by the score its recipe gave that row out of
    sample; and how many were replaced. A version that never trained on its holdout keeps its scores."""
    import numpy as np

    if not loaded.card.trained_on_holdout:
        return proba, 0
    kept = reference(loaded.name, loaded.version)
    kept = kept[kept[PART] == "holdout"]
    honest = pd.Series(kept[PROBA].to_numpy(float), index=kept[ROW].to_numpy(np.uint64))
    honest = honest[~honest.index.duplicated()]
    found = pd.Series(np.asarray(keys, dtype=np.uint64)).map(honest).to_numpy(float)
    known = ~np.isnan(found)
    return np.where(known, found, proba), int(known.sum())


def _iso_ms(stamp: int | None) -> str | None:
    """An MLflow millisecond timestamp as ISO 8601 UTC."""
    return None if stamp is None else pd.Timestamp(stamp, unit="ms", tz="UTC").isoformat()


def list_models() -> list[dict[str, Any]]:
    """Every registered model with its versions, aliases and headline metrics."""
    import mlflow

    client = mlflow.MlflowClient()
    out = []
    for registered in client.search_registered_models():
        aliases_of: dict[str, list[str]] = {}
        for alias, version in registered.aliases.items():
            aliases_of.setdefault(str(version), []).append(alias)
        versions = []
        for v in sorted(client.search_model_versions(f"name='{registered.name}'"), key=lambda v: int(v.version)):
            versions.append(
                {
                    "version": str(v.version),
                    "aliases": sorted(aliases_of.get(str(v.version), [])),
                    "run_id": v.run_id,
                    "created_at": _iso_ms(v.creation_timestamp),
                    "tags": dict(v.tags),
                }
            )
        out.append({"name": registered.name, "versions": versions})
    return out
