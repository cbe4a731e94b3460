"""The markdown report of ``serve_load.py``, drawn from the results it gathered."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from common import machine_info


def machine() -> dict[str, str]:
    libs = ", ".join(f"{n} {metadata.version(n)}" for n in ("fastapi", "uvicorn", "httpx", "mlflow", "scikit-learn",
                                                            "pandas"))
    return {**machine_info(), "libs": libs}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if value != value else f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(r: dict[str, Any]) -> str:
    m, lines = r["machine"], []
    add = lines.append
    add("# Benchmark: `poise serve` under load on loopback\n")
    add(f"Command: `{r['command']}`  ")
    add(f"Date: {r['date']}  ")
    add(f"Machine: {m['cores']} cores ({m['cpu']}), {m['os']}, Python {m['python']}; {m['libs']}.  ")
    add(f"**The load generator and the server share the same {m['cores']} cores**: every number below includes "
        "the competition for CPU between them (the `client cores` column shows how much the generator took; "
        "`other cores` is what the rest of the machine used meanwhile, from `/proc/stat`).  ")
    add(f"Server: `{' '.join(r['server_command'])}` (one uvicorn process, the default worker thread pool), "
        f"ready {r['startup_seconds']:.1f} s after launch, {r['rss_mb']:.0f} MB resident at the end. "
        "No token; every prediction is logged to `predictions.db` under `POISE_HOME`, as always.  ")
    add(f"Shared machine: before each phase the benchmark waited (up to {r['wait_idle']:g} s) for other work to "
        f"stop, and a phase during which other processes used more than {r['max_other']:g} cores was measured "
        "again: " + ("; ".join(f"{d['phase']} ({d['other_cores']:.2f} cores, {d['errors']} errors)"
                              for d in r["discarded"]) or "none was") + ".  ")
    add("Client: Python threads, one keep-alive httpx connection each, closed loop (a client sends its next "
        "request when the previous one is answered); latency is measured at the client, request sent to answer "
        "parsed.\n")

    add("## The model\n")
    add(f"`{r['model']}` trained on `poise/examples/ai4i2020.csv` (10,000 rows, target `target`) with the data-driven "
        f"plan and a {r['budget']:.0f} s budget per version.\n")
    add("| version | seed | strategy / estimator | blended members | trials | holdout AP | training s |")
    add("|---|---:|---|---|---:|---:|---:|")
    for t in r["trained"]:
        members = ", ".join(t.get("members") or []) or "—"
        add(f"| v{t['version']} | {t['seed']} | {t['strategy']} / {t['estimator']} | {members} | {t['n_trials']} | "
            f"{fmt(t['ap'], 4)} | {fmt(t['seconds'])} |")
    add("")

    add("## Single-row `POST /predict`\n")
    n_features, v1 = len(r["trained"][0]["features"]), r["trained"][0]["version"]
    add(f"`{{\"record\": {{...}}}}` with the model's {n_features} input columns, rows cycled from the data; "
        f"{r['warmup']} warm-up requests per level are not counted. Served by v{v1}.\n")
    add("| clients | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | server CPU ms/req | "
        "server cores | client cores | other cores |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in r["latency"]:
        add(f"| {p['clients']} | {p['requests']:,} | {p['errors']} | {fmt(p['rps'])} | {fmt(p['p50'])} | "
            f"{fmt(p['p90'])} | {fmt(p['p99'])} | {fmt(p['max'])} | {fmt(p['server_cpu_ms'])} | "
            f"{fmt(p['server_cores'], 2)} | {fmt(p['client_cores'], 2)} | {fmt(p['other_cores'], 2)} |")
    add("")
    add("CPU columns are in cores (1.00 = one core busy for the whole level): the server process and the load "
        "generator from their own counters, `other cores` = the machine's busy time (`/proc/stat`) minus both, "
        "so it is 0 when nothing else ran; the two kinds of counters are kept differently, so values within "
        "±0.1 of 0 are noise.\n")

    add(f"## One batch of {r['batch'][0]['rows']:,} rows\n")
    add(f"Median of {r['batch'][0]['repeats']} requests each, one at a time; wall time at the client includes "
        "sending the body and parsing the answer. `max |Δproba|` compares each way's probabilities with the "
        "JSON answer.\n")
    add("| way | body MB | errors | wall s (median) | wall s (best) | rows/s | max \\|Δproba\\| |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for b in r["batch"]:
        add(f"| {b['way']} | {b['bytes'] / 2**20:.2f} | {b['errors']} | {fmt(b['wall'], 2)} | {fmt(b['min'], 2)} | "
            f"{fmt(b['rows_per_s'], 0)} | {b['max_diff']:.1e} |")
    add("")
    add(f"Other processes used {r['batch'][0]['other_cores']:.2f} cores during the batches.\n")

    s = r["swap"]
    how = ("`versions.promote` / `versions.rollback` in the load generator's process" if s["via"] == "api"
           else "`poise promote` / `poise rollback` subprocesses")
    add("## Hot swap under load\n")
    add(f"{s['clients']} clients fire single-row requests for {s['wall']:.1f} s without pause. After "
        f"{r['settle']:.0f} s, v{r['trained'][1]['version']} is promoted; {r['settle']:.0f} s after its first "
        f"answer, `@champion` is rolled back to v{r['trained'][0]['version']}; the load runs "
        f"{r['settle']:.0f} s more. Aliases moved with {how}; the server polls `@champion` every "
        f"{r['poll']:g} s (`--poll`)."
        + (" With the CLI the times below count from launching the command (most of its run is importing poise), "
           "and `alias write ms` is the whole command." if s["via"] == "cli" else "") + "\n")
    add("| requests | errors | answers per version | X-Model-Version ≠ body | stale answers | no request_id | "
        "req/s | p50 ms | p99 ms | max ms |")
    add("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    per_version = ", ".join(f"v{v}: {n:,}" for v, n in sorted(s["by_version"].items()))
    add(f"| {s['requests']:,} | **{s['errors']}** | {per_version} | {s['mismatched']} | {s['stale']} | "
        f"{s['no_request_id']} | {fmt(s['rps'])} | {fmt(s['p50'])} | {fmt(s['p99'])} | {fmt(s['max'])} |")
    add("")
    add("| alias move | alias write ms | move → new version loaded (server clock) s | "
        "move → first answer from it s |")
    add("|---|---:|---:|---:|")
    for mv in s["moves"]:
        add(f"| {mv['what']} | {fmt(mv['alias_ms'], 0)} | {fmt(mv['to_loaded'], 2)} | "
            f"{fmt(mv['to_first_answer'], 2)} |")
    add("")
    add(f"Requests sent while a new version was being loaded (between an alias move and the new version's first "
        f"answer): {s['loading_n']:,}, p50 {fmt(s['loading_p50'])} ms, p99 {fmt(s['loading_p99'])} ms, "
        f"max {fmt(s['loading_max'])} ms. \"Stale answers\" counts answers from the old version to requests sent "
        f"after the new version had already answered (a mixed state); it must be 0. After the run `/health` said "
        f"`{s['health_status']}`, serving v{s['served_after']}, last swap error: {s['last_swap_error']}. "
        f"Server {s['server_cores']:.2f} cores, other processes {s['other_cores']:.2f} cores during the phase.\n")
    if s["error_examples"]:
        add("Errors seen: " + "; ".join(f"`{e}`" for e in s["error_examples"]) + "\n")

    log, c = r["log"], r["costs"]
    add("## The prediction log\n")
    if log.get("exists"):
        by_version = ", ".join(f"v{v}: {n:,}" for v, n in sorted(log["rows_by_version"].items()))
        add(f"`predictions.db` held {log['rows']:,} rows from {log['requests']:,} requests ({by_version}; "
            f"{log['mb']:.1f} MB with its WAL) against {r['rows_acknowledged']:,} rows the server answered with "
            f"HTTP 200 (warm-ups included): "
            f"{'every answered row is logged' if log['rows'] == r['rows_acknowledged'] else 'a MISMATCH'}.\n")
    else:
        add("No `predictions.db` was written.\n")
    add("`poise serve` has no setting to turn logging off, so its cost was measured in-process with the server "
        f"stopped: v{r['trained'][0]['version']} loaded with `versions.load`, `LoadedModel.predict` and "
        "`PredictionStore.log` (into a scratch database) timed on the same rows (median).\n")
    add("| rows | model predict ms | log ms | log / (predict + log) |")
    add("|---:|---:|---:|---:|")
    for rows, cost in c["rows"].items():
        share = cost["log_ms"] / (cost["predict_ms"] + cost["log_ms"])
        add(f"| {int(rows):,} | {fmt(cost['predict_ms'], 2)} | {fmt(cost['log_ms'], 2)} | {share:.0%} |")
    add("")
    one = c["rows"].get(1)
    first = r["latency"][0] if r["latency"] and r["latency"][0]["clients"] == 1 else None
    if one and first:
        add(f"With one client the median request took {first['p50']:.1f} ms at the client; predict + log of one row "
            f"in-process take {one['predict_ms'] + one['log_ms']:.1f} ms, so HTTP, request validation, building the "
            f"frame and the JSON answer add about {first['p50'] - one['predict_ms'] - one['log_ms']:.1f} ms.\n")
    add(f"Other processes used {c['other_cores']:.2f} cores during these in-process timings.\n")
    add(f"Loading v{r['trained'][1]['version']} the way the server's swap does (`poise.deploy.server.load_version`: "
        f"the MLflow model and its registry facts), in-process on the idle machine: {c['load_ms']:,.0f} ms "
        "(median of 3).")
    add("")
    return "\n".join(lines)
