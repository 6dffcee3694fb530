#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, starting from the checked-in seeds.
#
#   ./scripts/fuzz.sh            # 60 s per target
#   ./scripts/fuzz.sh 600        # 10 min per target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and the nightly toolchain (preinstalled here).
# A crash stops the run; its input is left in fuzz/artifacts/<target>/ — fix the bug and add
# the input as a regression test.
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")/../fuzz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis-target}/fuzz"

total=0
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    cp -n "seeds/$target/"* "corpus/$target/" 2>/dev/null || true
    printf '==> fuzzing %s for %ss\n' "$target" "$seconds"
    log="$(mktemp)"
    status=0
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|ERROR' "$log" || true
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    total=$((total + ${runs:-0}))
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed (exit $status); crashing inputs are in fuzz/artifacts/$target" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
done
echo "fuzzing done: $total executions in all, no crash"
