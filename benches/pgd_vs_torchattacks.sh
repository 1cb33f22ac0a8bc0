#!/usr/bin/env bash
# Side-by-side PGD L∞ throughput: xai-audit vs torchattacks on PyTorch, same
# weights (the torch model is rebuilt from our spec and weights), same inputs
# (benches/bench_inputs.py reads them as src/data/ does; both sides print a
# digest of what they attacked), same batch, steps, ε, step and thread count;
# ROUNDS alternating runs of each. Prints every run, then the medians, the
# ratio, both robust accuracies, the hot path's GFLOP/s (2 FLOPs per
# multiply-add, PGD-S = S × (forward + input gradient) + one final forward,
# the same count for both) against the SGEMM peak `xai-audit bench` measures,
# and each side's peak RSS. A mismatch in inputs, FLOP count or robust
# accuracy is flagged and makes the exit code 1. Not part of CI.
#
#   benches/pgd_vs_torchattacks.sh [--model M] [--arch SPEC.json] [--data PATH]
#       [--limit N] [--batch-size B] [--steps S] [--eps E] [--step-size A]
#       [--rounds R] [--threads T] [--engine auto|fast|reference]
#   benches/pgd_vs_torchattacks.sh [MODEL] [ROUNDS]        (the old form)
#
# Defaults: the shipped CNN on the 1,000 shipped digits, PGD-40, ε 0.1, step
# 0.01, batch 100, 3 rounds, 2 threads (THREADS=... works too). --data takes
# what `xai-audit bench --data` takes: an IDX images file, a folder with an
# IDX pair, or an image folder (class subfolders named by the spec's classes),
# 1 or 3 channels. benches/fixtures.py builds ResNet fixtures, e.g.
#
#   benches/pgd_vs_torchattacks.sh --model target/bench-fixtures/resnet18_cifar.safetensors \
#       --data target/bench-fixtures/cifar_random --steps 10 --batch-size 100 --limit 100
#
# Python: $VENV/bin/python with torch, torchattacks, safetensors, numpy and
# Pillow; VENV defaults to target/bench-venv, created on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=assets/mnist_cnn.safetensors
ARCH=
DATA=
LIMIT=1000
BATCH=100
STEPS=40
EPS=0.1
STEP_SIZE=0.01
ROUNDS=3
THREADS=${THREADS:-2}
ENGINE=auto
VENV=${VENV:-target/bench-venv}
positional=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --limit) LIMIT=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --eps) EPS=$2; shift 2 ;;
        --step-size) STEP_SIZE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --engine) ENGINE=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) positional+=("$1"); shift ;;
    esac
done
[ ${#positional[@]} -ge 1 ] && MODEL=${positional[0]}
[ ${#positional[@]} -ge 2 ] && ROUNDS=${positional[1]}

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV (torch CPU, torchattacks, safetensors, Pillow)..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch
    "$VENV/bin/pip" install --quiet torchattacks safetensors numpy pillow
fi
cargo build --release --quiet
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

common=(--limit "$LIMIT" --batch-size "$BATCH" --steps "$STEPS" --eps "$EPS" --step-size "$STEP_SIZE")
[ -n "$ARCH" ] && common+=(--arch "$ARCH")
[ -n "$DATA" ] && common+=(--data "$DATA")

# field TEXT REGEX: the first capture of REGEX (sed -E) in TEXT's matching line.
field() { printf '%s\n' "$1" | sed -nE "s#.*$2.*#\\1#p" | head -n1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=() theirs=() peaks=() torch_peaks=() rss_ours=() rss_theirs=()
robust_ours=() robust_theirs=()
mismatch=0
for r in $(seq 1 "$ROUNDS"); do
    out=$(./target/release/xai-audit bench "$MODEL" "${common[@]}" --engine "$ENGINE")
    line=$(printf '%s\n' "$out" | grep images/s)
    echo "round $r xai-audit:    $line ($(field "$out" 'threads, ([a-z]+ engine)'))"
    ours+=("$(field "$line" ' ([0-9.]+) images/s')")
    robust_ours+=("$(field "$line" 'robust accuracy ([0-9.]+)%')")
    peaks+=("$(field "$out" 'SGEMM peak ([0-9.]+) GFLOP/s')")
    rss_ours+=("$(field "$out" 'peak RSS ([0-9.]+) MiB')")
    flop_ours=$(field "$out" ', ([0-9.]+) MFLOP per image')
    sha_ours=$(field "$out" 'inputs sha256 ([0-9a-f]+)')

    out=$("$VENV/bin/python" benches/pgd_torchattacks.py "$MODEL" "${common[@]}" --threads "$THREADS")
    line=$(printf '%s\n' "$out" | grep '^torchattacks')
    echo "round $r torchattacks: $line"
    theirs+=("$(field "$line" '^torchattacks ([0-9.]+) images/s')")
    robust_theirs+=("$(field "$line" 'robust ([0-9.]+)%')")
    torch_peaks+=("$(field "$out" 'torch SGEMM peak ([0-9.]+) GFLOP/s')")
    rss_theirs+=("$(field "$out" 'peak RSS ([0-9.]+) MiB')")
    flop_theirs=$(field "$out" ', ([0-9.]+) MFLOP per image')
    sha_theirs=$(field "$out" 'sha256 ([0-9a-f]+)')
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

mo=$(median "${ours[@]}")
mt=$(median "${theirs[@]}")
peak=$(median "${peaks[@]}")
tpeak=$(median "${torch_peaks[@]}")
go=$(calc '%.1f' "$mo * $flop_ours / 1000")
gt=$(calc '%.1f' "$mt * $flop_ours / 1000")
machine="$THREADS threads, $(nproc --all) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "PGD-$STEPS L∞ ε $EPS step $STEP_SIZE, batch $BATCH, limit $LIMIT, $MODEL${DATA:+ on $DATA}; medians of $ROUNDS alternating rounds ($machine)"
echo "xai-audit    $mo images/s, robust accuracy $(calc '%.2f' "$(median "${robust_ours[@]}")")%, $go GFLOP/s = $(calc '%.0f' "100 * $go / $peak")% of the SGEMM peak $peak GFLOP/s, peak RSS $(median "${rss_ours[@]}") MiB"
echo "torchattacks $mt images/s, robust accuracy $(calc '%.2f' "$(median "${robust_theirs[@]}")")%, $gt GFLOP/s = $(calc '%.0f' "100 * $gt / $peak")% of the SGEMM peak $peak GFLOP/s (torch.mm's own: $tpeak), peak RSS $(median "${rss_theirs[@]}") MiB"
echo "ratio $(calc '%.2f' "$mo / $mt")x ($flop_ours MFLOP per image, both sides)"
if [ "$sha_ours" != "$sha_theirs" ]; then
    echo "MISMATCH: the inputs differ (sha256 $sha_ours vs $sha_theirs)"
    mismatch=1
fi
if [ "$flop_ours" != "$flop_theirs" ]; then
    echo "MISMATCH: FLOP per image counted $flop_ours (xai-audit) vs $flop_theirs (hooks in torch)"
    mismatch=1
fi
for i in "${!robust_ours[@]}"; do
    if [ "${robust_ours[$i]}" != "${robust_theirs[$i]}" ]; then
        echo "MISMATCH: round $((i + 1)) robust accuracy ${robust_ours[$i]}% (xai-audit) vs ${robust_theirs[$i]}% (torchattacks)"
        mismatch=1
    fi
done
[ $mismatch -eq 0 ] && echo "inputs (sha256 ${sha_ours:0:16}…), FLOP count and robust accuracy match"
exit $mismatch
