#!/usr/bin/env bash
# Smoke test of the terminal UI in a real terminal: runs the built binary in
# a detached 100×30 tmux session on a real report, sends keys, captures the
# pane after each step (`tmux capture-pane -p`) and checks what it shows;
# exits non-zero at the first check that fails, printing the screen.
#
#   .ci/tui-smoke.sh [REPORT.json] [CAPTURE.txt]
#
# REPORT defaults to the shipped example; CAPTURE, if given, receives the
# browse screen after the keys. XAI_AUDIT_BIN overrides the binary
# (default target/release/xai-audit; build it with `cargo build --release`).
# Needs tmux; the expected labels and attack names are read from the report
# with jq when it is installed.
set -euo pipefail

cd "$(dirname "$0")/.."
bin=${XAI_AUDIT_BIN:-target/release/xai-audit}
report=${1:-reports/examples/mnist_cnn-quick.json}
capture=${2:-}
session="xai-tui-smoke-$$"
screen=""

[ -x "$bin" ] || { echo "no binary at $bin: run cargo build --release" >&2; exit 1; }
command -v tmux >/dev/null || { echo "tmux is not installed" >&2; exit 1; }

cleanup() { tmux kill-session -t "$session" 2>/dev/null || true; }
trap cleanup EXIT

grab() { screen=$(tmux capture-pane -p -t "$session"); }

# Waits up to 10 s for the pane to show $1 (a fixed string).
expect() {
    for _ in $(seq 100); do
        grab
        if grep -qF -- "$1" <<<"$screen"; then return 0; fi
        sleep 0.1
    done
    echo "FAIL: the screen does not show: $1" >&2
    echo "$screen" >&2
    exit 1
}

keys() { tmux send-keys -t "$session" "$@"; }

# The pane keeps running a shell line after the UI exits, so the exit code and
# the restored (non-alternate) screen can be checked.
tmux new-session -d -s "$session" -x 100 -y 30 \
    "COLORTERM=truecolor '$bin' tui '$report'; echo \"tui exited with \$?\"; sleep 60"

label_of() { jq -r ".samples[$1].label" "$report"; }
attack_of() { jq -r ".summary.attacks[$1].name // empty" "$report"; }

expect "inputs 1/"
expect "top-5 probabilities"
expect "input 0 · label"
expect "amplified δ"
if command -v jq >/dev/null; then
    expect "input 0 · label $(label_of 0)"
    first=$(attack_of 0)
    [ -n "$first" ] && expect "attack $first 1/"
fi

keys j j
expect "input 2 · label"
keys Tab
if command -v jq >/dev/null && [ -n "$(attack_of 1)" ]; then
    expect "attack $(attack_of 1) 2/"
    expect "after $(attack_of 1)"
fi

keys '?'
expect "Tab  Shift-Tab"
keys Escape
keys 2
expect "clean accuracy"
expect "sanity checks"
keys 3
expect "clean prediction"
keys 1

keys / 7 Enter
expect "input 7 · label"
if command -v jq >/dev/null; then
    expect "input 7 · label $(label_of 7)"
fi
keys f
expect "filter: broken by this attack"
keys f f f
expect "filter: all"

# End on input 7 under the first attack with attribution maps, if any.
keys / 7 Enter
expect "input 7 · label"
if command -v jq >/dev/null; then
    mapped=$(jq -r '.summary.attributions[0].attacks[0].attack // empty' "$report")
    if [ -n "$mapped" ]; then
        for _ in $(jq '.summary.attacks | length' "$report" | xargs seq); do
            grab
            grep -qF "attack $mapped " <<<"$screen" && break
            keys Tab
            sleep 0.1
        done
        expect "attack $mapped "
        expect "after $mapped"
    fi
fi

grab
if [ -n "$capture" ]; then
    mkdir -p "$(dirname "$capture")"
    printf '%s\n' "$screen" >"$capture"
fi

keys q
expect "tui exited with 0"
# The alternate screen is gone: the list's border is no longer on screen.
grab
if grep -qF "top-5 probabilities" <<<"$screen"; then
    echo "FAIL: the terminal was not restored after q" >&2
    echo "$screen" >&2
    exit 1
fi
echo "tui smoke test passed ($report)"
