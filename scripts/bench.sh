#!/usr/bin/env bash
# Measures portcullis against bare axum and against the crates users would pick instead, in
# one run, and writes BENCHMARKS.md and docs/throughput.svg.
#
#   ./scripts/bench.sh                 # the whole run (about 35 minutes on 2 cores)
#   SECONDS_PER_CELL=2 ./scripts/bench.sh
#   SKIP_CRITERION=1 ./scripts/bench.sh    # keep the last criterion run, redo the load test
#   SKIP_COLD=1 ./scripts/bench.sh         # leave out the time to a first green run
#
# The last step times the README's two commands from a fresh clone with an empty target
# directory (scripts/cold-start.sh --tests, about 20 minutes).
#
# Starts PostgreSQL (for the uncached PostgreSQL row) and installs wrk when missing, and stops
# what it started. Builds go to $CARGO_TARGET_DIR/peers (default ~/.cache/portcullis-target).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
peers_target="$CARGO_TARGET_DIR/peers"

step() { printf '\n==> %s\n' "$*"; }

step "services"
# shellcheck source=scripts/services.sh
source scripts/services.sh
require_service PostgreSQL start_postgres
command -v wrk >/dev/null || apt_install wrk

if [ -z "${SKIP_CRITERION:-}" ]; then
    step "in-process benchmarks (criterion)"
    rm -rf "$peers_target/criterion/request" "$peers_target/criterion/stored_keys" "$peers_target/criterion/cache_hit"
    (cd peers && CARGO_TARGET_DIR="$peers_target" cargo bench --bench matrix --bench cache_map -- --noplot)
fi

step "loopback load test (wrk)"
(cd peers && CARGO_TARGET_DIR="$peers_target" cargo build --release --bins)
"$peers_target/release/loadtest" --seconds "${SECONDS_PER_CELL:-5}" --out "$services_dir/loadtest.json"

step "report"
mkdir -p docs
"$peers_target/release/report" --criterion "$peers_target/criterion" \
    --load "$services_dir/loadtest.json" --out BENCHMARKS.md --svg docs/throughput.svg \
    --command ./scripts/bench.sh
echo "wrote BENCHMARKS.md and docs/throughput.svg"

if [ -z "${SKIP_COLD:-}" ]; then
    step "time to a first green run (the README's commands from a fresh clone)"
    ./scripts/cold-start.sh --tests
fi
