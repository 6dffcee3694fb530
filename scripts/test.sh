#!/usr/bin/env bash
# Runs the whole portcullis test suite on a fresh machine.
#
#   ./scripts/test.sh                  # every test
#   CI_TOOLS=1 ./scripts/test.sh       # and the CI-only checks (cargo-deny, cargo-semver-checks,
#                                      # the fuzz smoke run), installing their tools if missing
#                                      # (unset: they run when their tools are installed;
#                                      # CI_TOOLS=0: never, as on a machine without them)
#   CI=true ./scripts/test.sh          # as CI: the CI-only checks too, and a test whose service
#                                      # is missing fails instead of skipping
#
# Builds go to $CARGO_TARGET_DIR, by default the clone's own `target/`, the directory
# `cargo run -p khoj` builds into: the README's two commands share one build. CI points it at
# a cache outside the clone (see .ci/run).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Each step says when it started (seconds since the script did), so a log shows where a run's time went.
step() { printf '\n==> [%d s] %s\n' "$SECONDS" "$*"; }

step "build cache: superseded test binaries removed"
# Every change leaves the previous build of each test binary (100-300 MB apiece) and of each
# crate's incremental state in the cache; a machine that runs the suite all day filled a 250 GB
# disk with them. One superseded by a newer build of the same name over two hours ago is one
# no build will use again (the two hours spare a concurrent run of another checkout).
superseded() { # directory, the suffix to strip from an entry's name (awk regex), find tests
    [ -d "$1" ] || return 0
    find "$1" -mindepth 1 -maxdepth 1 "${@:3}" -printf '%T@ %f\n' 2>/dev/null |
        sort -rn | awk -v pattern="$2" '{ name = $2; sub(pattern, "", name); if (seen[name]++) print $1, $2 }' |
        while read -r modified stale; do
            if [ "${modified%.*}" -lt "$(($(date +%s) - 7200))" ]; then echo "$1/$stale"; fi
        done
}
for deps in "$CARGO_TARGET_DIR"/debug/deps "$CARGO_TARGET_DIR"/peers/debug/deps; do
    superseded "$deps" '-[0-9a-f]+$' -type f -executable -name '*-*' ! -name '*.*' |
        while read -r stale; do rm -f "$stale" "$stale.d"; done
done
superseded "$CARGO_TARGET_DIR"/debug/incremental '-[^-]+$' -type d | xargs -r rm -rf
df -h "$CARGO_TARGET_DIR" | tail -n 1

step "services"
# shellcheck source=scripts/services.sh
source scripts/services.sh
require_service PostgreSQL start_postgres
require_service Redis start_redis
require_service "Chromium and Playwright" install_browser
require_service "Python interop libraries" install_python_interop
require_service "SMTP sink" start_smtp
require_service "OpenID Connect provider" install_oidc_provider
# The CI-only tools are compiled from crates.io (about 11 minutes on 2 cores for the three),
# which would more than double a newcomer's first run; outside CI they run when present or
# when asked for with CI_TOOLS=1.
if [ "${CI:-}" = true ]; then
    CI_TOOLS=1
fi
if [ "${CI_TOOLS:-}" = 1 ]; then
    require_service cargo-fuzz install_cargo_fuzz
    require_service cargo-deny install_cargo_deny
    require_service cargo-semver-checks install_cargo_semver_checks
fi

step "dependencies: licences, bans and sources (advisories need the network)"
# Whether a CI-only tool is to be used: installed, and not switched off with CI_TOOLS=0.
ci_tool() { [ "${CI_TOOLS:-}" != 0 ] && "$@" --version >/dev/null 2>&1; }

if ci_tool cargo deny; then
    cargo deny check bans licenses sources
else
    echo "SKIPPED: cargo-deny is not installed (CI_TOOLS=1 installs it)"
fi

step "public API: packaging, and semver against the release baseline ($(cat .semver-baseline))"
# The packaged crate must build from its own files alone, as crates.io will build it.
cargo package --quiet --allow-dirty
if ci_tool cargo semver-checks; then
    # A breaking change since the baseline fails here until the version is bumped (and the
    # baseline moved to the release commit) with the change in CHANGELOG.md.
    cargo semver-checks check-release --all-features --baseline-rev "$(cat .semver-baseline)"
else
    echo "SKIPPED: cargo-semver-checks is not installed (CI_TOOLS=1 installs it)"
fi

step "example servers (schemathesis starts them; their own tests build them too)"
cargo build --workspace --all-features --bins

step "unit, property, integration and example tests"
cargo test --workspace --all-features --lib --bins --tests --benches

step "documentation examples"
cargo test --workspace --all-features --doc

step "schemathesis against each example's OpenAPI document"
if command -v st >/dev/null; then
    ./scripts/schemathesis.sh
else
    echo "SKIPPED: schemathesis is not installed"
fi

step "peer comparison: unit tests and one pass of each benchmark"
(cd peers && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/peers" cargo test --all-targets)

step "fuzz smoke: every target for ${FUZZ_SECONDS:=30} s from the checked-in seeds"
if ci_tool cargo +nightly fuzz; then
    ./scripts/fuzz.sh "$FUZZ_SECONDS"
else
    echo "SKIPPED: cargo-fuzz or the nightly toolchain is missing (CI_TOOLS=1 installs cargo-fuzz)"
fi

step "all tests passed"
