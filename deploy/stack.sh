#!/usr/bin/env bash
# poise's scaled-out stack on one machine, without containers:
#   PostgreSQL (yours) ← MLflow tracking server (artifacts served by it) ← Prefect server ← a process worker.
#
#   deploy/stack.sh start [POSTGRES_URL]   create the databases if missing, start everything, print the env
#   deploy/stack.sh env                    print the env lines again:  eval "$(deploy/stack.sh env)"
#   deploy/stack.sh status                 what runs, with its health
#   deploy/stack.sh stop                   stop what `start` started (pids in the state dir)
#
# POSTGRES_URL is a server URL without a database, e.g. postgresql://postgres@127.0.0.1:5432 (the default);
# a password may be part of it (postgresql://user:secret@host:5432). Databases <prefix>mlflow,
# <prefix>optuna and <prefix>prefect are created there when missing.
#
# Everything else is an environment variable (default in brackets):
#   POISE_STACK_DIR        state dir: pids, logs, MLflow artifacts, Prefect home  [$POISE_HOME/stack, else ~/.poise/stack]
#   POISE_STACK_PG         PostgreSQL server URL when none is given on the command line [postgresql://postgres@127.0.0.1:5432]
#   POISE_STACK_DB_PREFIX  prefix of the database names                            [poise_]
#   POISE_STACK_HOST       address the servers bind to                             [127.0.0.1]
#   POISE_STACK_MLFLOW_PORT, POISE_STACK_PREFECT_PORT                              [5000, 4200]
#   POISE_STACK_MLFLOW_WORKERS  MLflow server worker processes                     [2]
#   POISE_STACK_POOL       Prefect work pool                                       [poise]
#   POISE_STACK_WORKER_LIMIT    flow runs the worker runs at once                  [1]
#   POISE_STACK_TIMEOUT    seconds to wait for each server to become healthy       [180]
#   POISE_STACK_BIN        folder with the mlflow, prefect and python executables  [the repository's .venv/bin, else PATH]
#
# The worker runs flow runs with its own environment: POISE_HOME, POISE_SERVER_URLS and POISE_SERVE_TOKEN
# as set when `start` ran reach the deploy flow (so it can tell model servers about a promotion).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

state="${POISE_STACK_DIR:-${POISE_HOME:-$HOME/.poise}/stack}"
prefix="${POISE_STACK_DB_PREFIX:-poise_}"
host="${POISE_STACK_HOST:-127.0.0.1}"
mlflow_port="${POISE_STACK_MLFLOW_PORT:-5000}"
prefect_port="${POISE_STACK_PREFECT_PORT:-4200}"
mlflow_workers="${POISE_STACK_MLFLOW_WORKERS:-2}"
pool="${POISE_STACK_POOL:-poise}"
worker_limit="${POISE_STACK_WORKER_LIMIT:-1}"
timeout="${POISE_STACK_TIMEOUT:-180}"
if [[ -n "${POISE_STACK_BIN:-}" ]]; then
    bin="$POISE_STACK_BIN"
elif [[ -x "$repo/.venv/bin/prefect" ]]; then
    bin="$repo/.venv/bin"
else
    bin="$(dirname "$(command -v prefect 2>/dev/null || echo /nonexistent/prefect)")"
fi

# Clients reach the servers on loopback when they bind to every interface.
client_host="$host"
[[ "$host" == "0.0.0.0" || "$host" == "::" ]] && client_host="127.0.0.1"
mlflow_url="http://$client_host:$mlflow_port"
prefect_api="http://$client_host:$prefect_port/api"

say() { printf '%s\n' "$*" >&2; }
die() { printf 'stack.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit "${1:-0}"
}

# ------------------------------------------------------------------ helpers
pid_of() {  # the pid recorded for a service, if that process is still alive
    local file="$state/$1.pid"
    [[ -f "$file" ]] || return 1
    local pid
    pid="$(<"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
    return 1
}

healthy() {  # URL answers 2xx within a few seconds
    curl -fsS --max-time 5 -o /dev/null "$1" 2>/dev/null
}

port_taken() {
    (exec 3<>"/dev/tcp/$client_host/$1") 2>/dev/null
}

wait_healthy() {  # name url pid log
    local name="$1" url="$2" pid="$3" log="$4" since=$SECONDS
    while ! healthy "$url"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "--- last lines of $log"
            tail -n 30 "$log" >&2 || true
            die "$name exited during start-up (log: $log)"
        fi
        if (( SECONDS - since >= timeout )); then
            say "--- last lines of $log"
            tail -n 30 "$log" >&2 || true
            die "$name is not healthy at $url after ${timeout}s (log: $log; raise POISE_STACK_TIMEOUT to wait longer)"
        fi
        sleep 1
    done
    say "  $name healthy at $url after $((SECONDS - since))s"
}

launch() {  # name command...: start in its own session (so stop can end its children too), log to the state dir
    local name="$1"
    shift
    local log="$state/logs/$name.log"
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$state/$name.pid"
    echo $!
}

alive_groups() {  # which of the given process groups still have a member
    local g
    for g in "$@"; do
        kill -0 -- "-$g" 2>/dev/null && echo "$g"
    done
    return 0
}

stop_one() {  # name [grace]: TERM its process group, then KILL what is left after grace seconds (20)
    local name="$1" grace="${2:-20}" pid
    if ! pid="$(pid_of "$name")"; then
        [[ -f "$state/$name.pid" ]] && say "  $name: not running"
        rm -f "$state/$name.pid"
        return 0
    fi
    # Its group, plus the groups of children that started their own (the worker runs each flow run in
    # a new session, which would otherwise outlive it).
    local groups=("$pid") child_group
    while read -r child_group; do
        [[ -n "$child_group" && "$child_group" != "$pid" ]] && groups+=("$child_group")
    done < <(ps -o pgid= --ppid "$pid" 2>/dev/null | tr -d ' ' | sort -u)
    (( ${#groups[@]} > 1 )) && say "  $name: also stopping $(( ${#groups[@]} - 1 )) process group(s) it started"
    local g
    for g in "${groups[@]}"; do
        kill -TERM -- "-$g" 2>/dev/null || true
    done
    local waited=0 left
    left="$(alive_groups "${groups[@]}")"
    while [[ -n "$left" ]] && (( waited < grace )); do
        sleep 1
        waited=$((waited + 1))
        # shellcheck disable=SC2086  # one group id per word
        left="$(alive_groups $left)"
    done
    if [[ -n "$left" ]]; then
        say "  $name: still running after ${waited}s, killing it"
        for g in $left; do
            kill -KILL -- "-$g" 2>/dev/null || true
        done
    fi
    rm -f "$state/$name.pid"
    say "  $name: stopped (pid $pid)"
}

pg_base() {  # the server URL without a database or trailing slash
    local url="${1%/}"
    local scheme="${url%%://*}" rest="${url#*://}"
    [[ "$url" == *"://"* && ( "$scheme" == postgresql || "$scheme" == postgres ) ]] \
        || die "not a PostgreSQL URL: $1 (expected postgresql://user[:password]@host:port)"
    [[ "$rest" == *"?"* ]] && die "give the PostgreSQL URL without query parameters: $1"
    rest="${rest%%/*}"  # drop a database name, if one was given
    echo "postgresql://$rest"
}

ensure_database() {  # base name
    local base="$1" db="$2" exists
    exists="$(psql "$base/postgres" -v ON_ERROR_STOP=1 -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" \
        || die "cannot query PostgreSQL at $base (is it running, and may this user connect?)"
    if [[ "$exists" == 1 ]]; then
        say "  database $db: exists"
    else
        psql "$base/postgres" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$db\"" >/dev/null \
            || die "cannot create database $db at $base (the user needs CREATEDB, or create it yourself)"
        say "  database $db: created"
    fi
}

env_lines() {
    # MLflow prints run links on stdout whenever it tracks to a server; the last line keeps `poise ... --json` clean.
    local optuna
    optuna="$(<"$state/optuna-storage")" || die "no stack has been started with state dir $state"
    cat <<EOF
export POISE_TRACKING_URI=$mlflow_url
export POISE_ARTIFACT_ROOT=mlflow-artifacts:/
export POISE_OPTUNA_STORAGE=$optuna
export PREFECT_API_URL=$prefect_api
export MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true
EOF
}

undo_start() {  # EXIT trap of a start: on failure, stop (newest first) what this start launched
    local rc=$? i
    (( rc != 0 && ${#started[@]} > 0 )) || return 0
    say "start failed: stopping ${started[*]}"
    for (( i = ${#started[@]} - 1; i >= 0; i-- )); do
        stop_one "${started[i]}" 5
    done
    exit "$rc"
}

# ------------------------------------------------------------------ commands
start() {
    local pg
    pg="$(pg_base "${1:-${POISE_STACK_PG:-postgresql://postgres@127.0.0.1:5432}}")"
    local t0=$SECONDS

    for exe in mlflow prefect python; do
        [[ -x "$bin/$exe" ]] || die "no $exe in $bin (install poise in a virtualenv, or set POISE_STACK_BIN)"
    done
    command -v psql >/dev/null || die "psql not found (install the PostgreSQL client)"
    command -v curl >/dev/null || die "curl not found"
    command -v setsid >/dev/null || die "setsid not found (util-linux)"
    # MLflow and Optuna reach PostgreSQL through SQLAlchemy; name the driver, since SQLAlchemy's default
    # for a bare postgresql:// changed from psycopg2 (before 2.1) to psycopg 3 (2.1 on).
    local driver
    if "$bin/python" -c "import psycopg" 2>/dev/null; then
        driver=psycopg
    elif "$bin/python" -c "import psycopg2" 2>/dev/null; then
        driver=psycopg2
    else
        die "no PostgreSQL driver in $bin/python (MLflow and Optuna need one): $bin/python -m pip install 'psycopg[binary]'"
    fi
    local sa_pg="${pg/postgresql:\/\//postgresql+$driver://}"
    if [[ "$host" != 127.* && "$host" != localhost && "$host" != "::1" ]]; then
        say "warning: binding to $host; the MLflow and Prefect servers have no authentication of their own."
    fi

    mkdir -p "$state/logs" "$state/mlflow-artifacts" "$state/prefect"
    # A start that fails half-way stops what it started itself (not what an earlier start left running).
    started=()
    trap undo_start EXIT
    say "state dir: $state"

    say "databases at $pg"
    ensure_database "$pg" "${prefix}mlflow"
    ensure_database "$pg" "${prefix}optuna"
    ensure_database "$pg" "${prefix}prefect"
    echo "$sa_pg/${prefix}optuna" >"$state/optuna-storage"

    # The stack's own processes keep Prefect's files in the state dir, whatever POISE_HOME says.
    export PREFECT_HOME="$state/prefect"
    export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true

    local pid
    # --- MLflow: runs and registry in PostgreSQL, artifacts through the server into the state dir
    if pid="$(pid_of mlflow)"; then
        say "mlflow: already running (pid $pid)"
    else
        port_taken "$mlflow_port" && die "port $mlflow_port is taken (set POISE_STACK_MLFLOW_PORT)"
        say "mlflow: starting on $host:$mlflow_port"
        pid="$(launch mlflow "$bin/mlflow" server \
            --backend-store-uri "$sa_pg/${prefix}mlflow" \
            --serve-artifacts --artifacts-destination "$state/mlflow-artifacts" \
            --default-artifact-root mlflow-artifacts:/ \
            --host "$host" --port "$mlflow_port" --workers "$mlflow_workers")"
        started+=(mlflow)
    fi
    local mlflow_pid="$pid"

    # --- Prefect server: PostgreSQL through asyncpg (a Prefect dependency), else its SQLite default
    if pid="$(pid_of prefect)"; then
        say "prefect: already running (pid $pid)"
    else
        port_taken "$prefect_port" && die "port $prefect_port is taken (set POISE_STACK_PREFECT_PORT)"
        if "$bin/python" -c "import asyncpg" 2>/dev/null; then
            export PREFECT_API_DATABASE_CONNECTION_URL="${pg/postgresql:\/\//postgresql+asyncpg://}/${prefix}prefect"
            say "prefect: starting on $host:$prefect_port (PostgreSQL database ${prefix}prefect)"
        else
            unset PREFECT_API_DATABASE_CONNECTION_URL
            say "prefect: starting on $host:$prefect_port (asyncpg missing: SQLite under $PREFECT_HOME)"
        fi
        pid="$(launch prefect "$bin/prefect" server start --host "$host" --port "$prefect_port" --analytics-off)"
        unset PREFECT_API_DATABASE_CONNECTION_URL
        started+=(prefect)
    fi
    local prefect_pid="$pid"

    wait_healthy mlflow "$mlflow_url/health" "$mlflow_pid" "$state/logs/mlflow.log"
    wait_healthy prefect "$prefect_api/health" "$prefect_pid" "$state/logs/prefect.log"

    # --- the work pool, the deployments and a worker
    export PREFECT_API_URL="$prefect_api"
    if "$bin/prefect" --no-prompt work-pool inspect "$pool" >/dev/null 2>&1; then
        say "work pool $pool: exists"
    else
        "$bin/prefect" --no-prompt work-pool create "$pool" --type process >>"$state/logs/register.log" 2>&1 \
            || die "could not create work pool $pool (log: $state/logs/register.log)"
        say "work pool $pool: created"
    fi
    (cd "$repo" && "$bin/prefect" --no-prompt deploy --all --prefect-file deploy/prefect.yaml) \
        >>"$state/logs/register.log" 2>&1 \
        || { tail -n 30 "$state/logs/register.log" >&2; die "prefect deploy failed (log: $state/logs/register.log)"; }
    say "deployments: poise-train/train, poise-deploy/deploy registered"

    if pid="$(pid_of worker)"; then
        say "worker: already running (pid $pid)"
    else
        # What flow runs need to reach MLflow and Optuna; the rest of this environment passes through.
        pid="$(POISE_TRACKING_URI="$mlflow_url" POISE_ARTIFACT_ROOT=mlflow-artifacts:/ MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true \
            POISE_OPTUNA_STORAGE="$(<"$state/optuna-storage")" \
            launch worker "$bin/prefect" worker start --pool "$pool" --type process \
                --name "poise-$(hostname)-$$" --limit "$worker_limit" --install-policy never)"
        started+=(worker)
        sleep 3
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$state/logs/worker.log" >&2; die "the worker exited (log: $state/logs/worker.log)"; }
        say "worker: started (pid $pid) on pool $pool"
    fi

    trap - EXIT
    say "stack up in $((SECONDS - t0))s. MLflow UI: $mlflow_url  Prefect UI: ${prefect_api%/api}"
    say "point poise at it with:"
    env_lines
}

status() {
    [[ -d "$state" ]] || { say "no stack state in $state"; return 1; }
    local name pid url health ok=0
    for name in mlflow prefect worker; do
        case "$name" in
            mlflow) url="$mlflow_url/health" ;;
            prefect) url="$prefect_api/health" ;;
            worker) url="" ;;
        esac
        if pid="$(pid_of "$name")"; then
            health="running"
            if [[ -n "$url" ]]; then
                if healthy "$url"; then
                    health="healthy ($url)"
                else
                    health="running but not answering at $url"
                    ok=1
                fi
            fi
            printf '%-8s pid %-7s %s\n' "$name" "$pid" "$health"
        else
            printf '%-8s %s\n' "$name" "stopped"
            ok=1
        fi
    done
    printf 'state dir %s\n' "$state"
    return "$ok"
}

stop() {
    [[ -d "$state" ]] || { say "no stack state in $state"; return 0; }
    # Prefect 3.9's worker, started without a terminal, turns SIGTERM into a SIGINT it then ignores, hence
    # the short grace. A flow run in progress is stopped with it.
    stop_one worker 5
    stop_one prefect
    stop_one mlflow
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    status) status ;;
    env) env_lines ;;
    -h|--help|help) usage 0 ;;
    *) usage 2 ;;
esac
