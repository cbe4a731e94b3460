"""Deployment as a Prefect flow: check the gate → promote (``@champion`` moves, ``@previous`` kept) → tell the servers.

Promotion is an alias move in the registry, so nothing is ever half-deployed: servers
follow ``@champion`` and swap in the background. Telling them only makes the swap
immediate; a server that cannot be reached still picks the change up at its next poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from poise.contracts import GateReport
from poise.pipelines import runtime
from poise.settings import get_settings


@dataclass
class DeployOutcome:
    model: str
    version: str
    promoted: bool
    previous: str | None = None
    reasons: list[str] = field(default_factory=list)
    servers: dict[str, str] = field(default_factory=dict)  # url → what it answered
    flow_run_id: str | None = None


@task(name="check the gate", cache_policy=NO_CACHE)
def check_gate(model: str, version: str, gate: GateReport | None) -> list[str]:
    """Why ``version`` may not be promoted; an empty list means it may."""
    from poise.registry import tracking, versions

    runtime.stage("checking the gate")
    tracking.connect(get_settings())
    versions.resolve(f"{model}:{version}")  # a clear error for an unknown model or version
    if gate is None:
        run_id = versions.describe(model, version)["run_id"]
        stored = tracking.read_json(run_id, "gate.json") if run_id else None
        if stored is None:
            return [f"{model} v{version} has no gate report",
                    f"a person can still promote it: poise promote {model} {version}"]
        gate = GateReport.model_validate(stored)
    if not gate.passed:
        return [f"{model} v{version} did not pass its gates: " + "; ".join(gate.reasons)]
    champion = versions.alias_version(model, versions.CHAMPION)
    if champion == version:
        return [f"{model} v{version} is already @champion"]
    if champion != gate.champion_version:
        was = f"v{gate.champion_version}" if gate.champion_version else "no champion"
        return [f"@champion of {model} moved from {was} to v{champion} after v{version} was gated; "
                f"gate it against the new champion, or promote it by hand: poise promote {model} {version}"]
    return []


@task(name="promote to champion", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3,
      retry_condition_fn=runtime.retry_if_transient)
def promote_version(model: str, version: str) -> str | None:
    from poise.registry import versions

    runtime.stage("promoting")
    return versions.promote(model, version)


@task(name="tell the model servers", cache_policy=NO_CACHE)
def tell_servers(model: str) -> dict[str, str]:
    runtime.stage("telling the model servers")
    return notify_servers(model)


def notify_servers(model: str, timeout: float = 10.0) -> dict[str, str]:
    """Ask every known server of ``model`` to check ``@champion`` now; url → its answer or the failure."""
    import os

    import httpx

    from poise.registry import servers

    settings = get_settings()
    urls = list(dict.fromkeys([*settings.server_urls, *servers.running(settings.home, model)]))
    token = os.environ.get("POISE_SERVE_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answers: dict[str, str] = {}
    for url in urls:
        try:
            response = httpx.post(f"{url.rstrip('/')}/admin/reload", headers=headers, timeout=timeout)
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            if response.status_code != 200:
                answers[url] = f"HTTP {response.status_code}: {body.get('detail', response.text[:200])}"
            elif body.get("model") != model:
                answers[url] = f"serves {body.get('model')!r}, not {model!r}"
            else:
                error = body.get("last_swap_error")
                answers[url] = f"serving v{body.get('version')}" + (f" (swap failed: {error})" if error else "")
        except httpx.HTTPError as exc:
            answers[url] = f"unreachable ({type(exc).__name__}); it will see the change at its next poll"
    return answers


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"deploy-{params.get('model', 'model')}-v{params.get('version', '?')}"


@flow(name="poise-deploy", flow_run_name=_run_name)
def deploy_flow(model: str, version: str, gate: GateReport | None = None) -> DeployOutcome:
    """Make ``model`` v``version`` the champion if its gate report allows it, and tell the servers.

    Prefect validates the parameters: a gate report given as JSON becomes a ``GateReport``.
    """
    flow_run_id = runtime.flow_run()[0]
    reasons = check_gate(model, version, gate)
    if reasons:
        return DeployOutcome(model, version, promoted=False, reasons=reasons, flow_run_id=flow_run_id)
    previous = promote_version(model, version)
    answers = tell_servers(model)
    return DeployOutcome(model, version, promoted=True, previous=previous, servers=answers, flow_run_id=flow_run_id)
