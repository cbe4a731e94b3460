#!/usr/bin/env bash
# Creates benchmarks/.venv-autogluon, AutoGluon's own environment for the benchmark.
# AutoGluon 1.6 caps pandas below 2.4, which clashes with poise's, so it cannot share
# poise's environment; benchmarks/run.py starts its driver with this venv's python.
# The tabular extras below need no torch (the neural-network models are left out).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-autogluon"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3"
"$venv/bin/python" -c "import autogluon.tabular, sys; print('autogluon', autogluon.tabular.__version__, 'in', sys.prefix)"
