#!/usr/bin/env bash
# Measures the README's run command from a fresh clone with an empty target directory: the
# seconds from `cargo run -p khoj` until the server prints `listening on`. Writes the
# figure into the "Cold start" section of BENCHMARKS.md (after the marker the benchmark
# report keeps).
#
#   ./scripts/cold-start.sh
#
# The crates are taken from cargo's registry cache when it has them, so the figure is the
# build, not the download.
set -euo pipefail

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

section="## Cold start

\`cargo run -p khoj\` (the README's run command) from a fresh clone of $commit with an empty
target directory, until the server prints \`listening on\`: **${rounded} s** ($crates library
crates built; $(nproc) cores; measured $date by \`./scripts/cold-start.sh\`). Target: under
4 minutes."

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
    f.write(head + marker + "\n\n" + section + "\n" + kept.lstrip("\n"))
EOF
echo "cold start: ${seconds} s"
