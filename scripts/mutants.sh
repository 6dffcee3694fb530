#!/usr/bin/env bash
# Mutation testing of the security-critical modules: cargo-mutants changes the code one small
# way at a time (a `==` to `!=`, a function body to `true`) and checks that some unit test
# fails. A mutant that survives is code no test pins down. The modules and the known
# equivalent mutants are listed in .cargo/mutants.toml.
#
#   ./scripts/mutants.sh                       # every listed module (about an hour here)
#   ./scripts/mutants.sh --re '^src/redirect.rs'   # one module (a regex on the mutants' names)
#
# Not part of .ci/run (too slow for it); the results are in mutants.out/ (ignored by git).
set -euo pipefail

cd "$(dirname "$0")/.."
version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
    cargo install --locked cargo-mutants --version "$version"
fi
# A target directory of its own: mutants build a copy of the tree, which would otherwise
# evict the regular builds' incremental state. Never run two of these at once on it: the runs'
# test binaries land on the same paths, and each would test the other's mutants.
export CARGO_TARGET_DIR="${CARGO_TARGET_MUTANTS_DIR:-$HOME/.cache/portcullis-mutants}"
exec cargo mutants --jobs 1 "$@"
