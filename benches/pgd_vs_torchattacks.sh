#!/usr/bin/env bash
# Side-by-side PGD-40 L∞ throughput: xai-audit vs torchattacks on PyTorch, same
# weights (the torch model is rebuilt from our spec and weights), same 1,000
# shipped digits, batch 100, same thread count; ROUNDS alternating runs of
# each; prints every run, the medians and the ratio. Not part of CI.
#
#   benches/pgd_vs_torchattacks.sh [MODEL] [ROUNDS]
#
# Builds a venv with torch (CPU) and torchattacks under target/bench-venv on
# first use (override with VENV=...). THREADS (default 2) caps both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-assets/mnist_cnn.safetensors}
ROUNDS=${2:-3}
THREADS=${THREADS:-2}
VENV=${VENV:-target/bench-venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV (torch CPU, torchattacks, safetensors)..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch
    "$VENV/bin/pip" install --quiet torchattacks safetensors numpy
fi
cargo build --release --quiet
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

ours=()
theirs=()
for r in $(seq 1 "$ROUNDS"); do
    line=$(./target/release/xai-audit bench "$MODEL" --limit 1000 --batch-size 100 | grep images/s)
    echo "round $r xai-audit:    $line"
    ours+=("$(echo "$line" | sed -E 's/.* ([0-9.]+) images\/s.*/\1/')")
    line=$("$VENV/bin/python" benches/pgd_torchattacks.py "$MODEL" --threads "$THREADS")
    echo "round $r torchattacks: $line"
    theirs+=("$(echo "$line" | sed -E 's/^torchattacks ([0-9.]+) images\/s.*/\1/')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mo=$(median "${ours[@]}")
mt=$(median "${theirs[@]}")
echo "median xai-audit ${mo} images/s, torchattacks ${mt} images/s, ratio $(awk -v a="$mo" -v b="$mt" 'BEGIN {printf "%.2f", a / b}')x ($MODEL, $THREADS threads, $(nproc --all) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
