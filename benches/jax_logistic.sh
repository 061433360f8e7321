#!/usr/bin/env bash
# Logistic regression's full gradient (10⁴ rows × 20 features from a CSV file):
# lagc and a hand-written Rust loop (`cargo bench --bench data`), then
# `jax.jit(jax.grad(loss))` on the same file, in one run. JAX is installed into
# a virtual environment under target/ the first time; the tests never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c "import jax, numpy" 2>/dev/null || "$venv/bin/pip" install --quiet "jax[cpu]" numpy
csv="$(mktemp -d)/logistic.csv"
LAGC_BENCH_DATA_CSV="$csv" cargo bench --bench data
"$venv/bin/python" benches/jax_logistic.py "$csv"
rm -rf "$(dirname "$csv")"
