#!/usr/bin/env bash
# Measures the README's run command from a fresh clone with an empty target directory: the
# seconds from `cargo run -p khoj` until the server prints `listening on`; with `--tests`,
# then the README's test command in the same clone and target directory, as a newcomer runs
# them one after the other. Writes the figures into the "Cold start" section of BENCHMARKS.md
# (after the marker the benchmark report keeps).
#
#   ./scripts/cold-start.sh            # about 4 minutes on 2 cores
#   ./scripts/cold-start.sh --tests    # and about 15 more
#
# The test command runs as on a newcomer's machine: its own services (the PORTCULLIS_TEST_*
# variables are cleared), not CI (CI is cleared), and without the CI-only tools (CI_TOOLS=0).
# The system packages it installs on a fresh machine (PostgreSQL, Redis, Chromium, Node) are
# taken as installed here.
#
# The crates are taken from cargo's registry cache when it has them, so the figure is the
# build, not the download.
set -euo pipefail

with_tests=""
[ "${1:-}" = --tests ] && with_tests=1

cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'pkill -f "$work/target/debug/khoj" 2>/dev/null || true; rm -rf "$work"' EXIT

git clone --quiet "$root" "$work/clone"
commit=$(git -C "$work/clone" rev-parse --short HEAD)
cd "$work/clone"
export CARGO_TARGET_DIR="$work/target"
unset RUSTC_WRAPPER

start=$(date +%s.%N)
seconds=""
# The server's first line is its address; stop it once it is there.
while IFS= read -r line; do
    case "$line" in
        *"listening on"*)
            seconds=$(echo "$(date +%s.%N) - $start" | bc)
            break
            ;;
    esac
done < <(cargo run --quiet -p khoj 2>"$work/build.log")
if [ -z "$seconds" ]; then
    echo "the server never printed 'listening on'; build log:" >&2
    tail -20 "$work/build.log" >&2
    exit 1
fi
crates=$(find "$work/target/debug/deps" -name '*.rlib' | sed 's#.*/lib##; s#-[0-9a-f]*\.rlib##' | sort -u | wc -l)
date=$(date -u '+%Y-%m-%d %H:%M UTC')
rounded=$(printf '%.0f' "$seconds")
pkill -f "$work/target/debug/khoj" 2>/dev/null || true

section="## Cold start

\`cargo run -p khoj\` (the README's run command) from a fresh clone of $commit with an empty
target directory, until the server prints \`listening on\`: **${rounded} s** ($crates library
crates built; $(nproc) cores; measured $date by \`./scripts/cold-start.sh\`). Target: under
4 minutes."

if [ -n "$with_tests" ]; then
    test_start=$(date +%s)
    if ! (
        for variable in $(compgen -e | grep '^PORTCULLIS_TEST_'); do unset "$variable"; done
        unset CI
        CI_TOOLS=0 ./scripts/test.sh
    ) >"$work/test.log" 2>&1; then
        echo "the test command failed; its log ends:" >&2
        tail -30 "$work/test.log" >&2
        exit 1
    fi
    test_seconds=$(($(date +%s) - test_start))
    steps=$(grep -o '^==> \[[0-9]* s\] [a-z].*' "$work/test.log" | sed 's/^==> //; s/^/    /')
    section="$section

Then \`./scripts/test.sh\` (the README's test command) in the same clone and target directory,
as a newcomer runs it after the server: **$((test_seconds / 60)) min $((test_seconds % 60)) s**
(services from this machine's packages, CI-only tools off as on a machine without them;
target: under 20 minutes). Where it went, each step's start:

\`\`\`
$steps
\`\`\`

The CI-only checks add their tools' first build: \`cargo install\` of cargo-deny,
cargo-semver-checks and cargo-fuzz (about 11 minutes on 2 cores), then the semver check's two
rustdoc builds and the nightly fuzz builds (about 5 and 12 minutes cold in \`.ci/run\`)."
    echo "test command: ${test_seconds} s"
fi

cd "$root"
marker='<!-- Measured by other scripts; kept when this report is regenerated. -->'
python3 - "$marker" "$section" <<'EOF'
import re
import sys

marker, section = sys.argv[1], sys.argv[2]
with open("BENCHMARKS.md") as f:
    text = f.read()
if marker not in text:
    text = text.rstrip("\n") + "\n\n" + marker + "\n"
head, kept = text.split(marker, 1)
# Replace an earlier cold-start section, keep any other measured section.
kept = re.sub(r"\n## Cold start\n.*?(?=\n## |\Z)", "", kept, flags=re.S)
with open("BENCHMARKS.md", "w") as f:
    f.write(head + marker + "\n\n" + section + "\n\n" + kept.lstrip("\n"))
EOF
echo "cold start: ${seconds} s"
