#!/usr/bin/env bash
# Runs every fuzz target for a fixed budget and prints a table of executions
# and crashes. Local only, not part of CI: needs a nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS is the budget per target (default 60). The corpus grows in
# tests/fuzz/corpus/<target> (seeded from tests/fuzz/seeds/<target>), crashing
# inputs land in tests/fuzz/artifacts/<target>, and each target's libFuzzer
# log in tests/fuzz/logs/<target>.log. Everything runs under `nice -n 19`.
set -uo pipefail

budget="${1:-60}"
shift || true
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$fuzz_dir/../.." && pwd)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(spec plan report safetensors onnx)
fi
rss_mb="${FUZZ_RSS_MB:-2048}"
timeout_s="${FUZZ_TIMEOUT_S:-10}"

cd "$root"
mkdir -p "$fuzz_dir/logs"
nice -n 19 cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" || exit 1

rows=()
status=0
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    artifacts="$fuzz_dir/artifacts/$t"
    log="$fuzz_dir/logs/$t.log"
    mkdir -p "$corpus" "$artifacts"
    dict=()
    [ -f "$fuzz_dir/dicts/$t.dict" ] && dict=(-dict="$fuzz_dir/dicts/$t.dict")
    before=$(find "$artifacts" -type f | wc -l)
    echo "fuzzing $t for ${budget}s (log: $log)" >&2
    nice -n 19 cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" "$t" "$corpus" "$fuzz_dir/seeds/$t" -- \
        -max_total_time="$budget" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    rc=$?
    after=$(find "$artifacts" -type f | wc -l)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    if [ -z "$execs" ]; then
        # A run stopped by a crash prints no final stats: take the last status line.
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | grep -o 'in [0-9]*' | grep -o '[0-9]*')
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="? (exit $rc, see log)"
    fi
    [ "$rc" -ne 0 ] && status=1
    rate="-"
    if [ -n "$execs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ]; then
        rate=$((execs / secs))
    fi
    rows+=("$(printf '%-12s %8ss %12s %10s  %s' "$t" "$budget" "${execs:-?}" "$rate" "$crashes")")
done

printf '\n%-12s %9s %12s %10s  %s\n' target budget executions exec/s crashes
for r in "${rows[@]}"; do
    echo "$r"
done
exit $status
