#!/usr/bin/env bash
# Runs the whole portcullis test suite on a fresh machine.
#
#   ./scripts/test.sh            # everything
#   CI=true ./scripts/test.sh    # same, but a test whose service is missing fails instead of skipping
#
# Builds go to $CARGO_TARGET_DIR (default: ~/.cache/portcullis-target, outside the clone) so
# that repeated runs are incremental.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "build cache: superseded test binaries removed"
# Every change leaves the previous build of each test binary (100-300 MB apiece) in the shared
# cache, and a machine that runs the suite all day fills its disk. A binary older than a day
# with a newer one of the same name is one no build will use again.
for deps in "$CARGO_TARGET_DIR"/debug/deps "$CARGO_TARGET_DIR"/peers/debug/deps; do
    [ -d "$deps" ] || continue
    find "$deps" -maxdepth 1 -type f -executable -name '*-*' ! -name '*.*' -printf '%T@ %f\n' |
        sort -rn | awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $1, $2 }' |
        while read -r modified stale; do
            if [ "${modified%.*}" -lt "$(($(date +%s) - 86400))" ]; then
                rm -f "$deps/$stale" "$deps/$stale.d"
            fi
        done
done
find "$CARGO_TARGET_DIR"/debug/incremental -mindepth 1 -maxdepth 1 -mtime +2 -exec rm -rf {} + 2>/dev/null || true
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
require_service cargo-fuzz install_cargo_fuzz
require_service cargo-deny install_cargo_deny
require_service cargo-semver-checks install_cargo_semver_checks

step "dependencies: licences, bans and sources (advisories need the network)"
if cargo deny --version >/dev/null 2>&1; then
    cargo deny check bans licenses sources
else
    echo "SKIPPED: cargo-deny is not installed"
fi

step "public API: packaging, and semver against the release baseline ($(cat .semver-baseline))"
# The packaged crate must build from its own files alone, as crates.io will build it.
cargo package --quiet --allow-dirty
if cargo semver-checks --version >/dev/null 2>&1; then
    # A breaking change since the baseline fails here until the version is bumped (and the
    # baseline moved to the release commit) with the change in CHANGELOG.md.
    cargo semver-checks check-release --all-features --baseline-rev "$(cat .semver-baseline)"
else
    echo "SKIPPED: cargo-semver-checks is not installed"
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
if cargo +nightly fuzz --version >/dev/null 2>&1; then
    ./scripts/fuzz.sh "$FUZZ_SECONDS"
else
    echo "SKIPPED: cargo-fuzz or the nightly toolchain is missing"
fi

step "all tests passed"
