#!/usr/bin/env bash
# Runs schemathesis against each example server's own OpenAPI document (`/openapi.json`):
# no 5xx, every status documented, every body and content type as documented.
#
#   ./scripts/schemathesis.sh          # 30 examples per operation
#   EXAMPLES=200 ./scripts/schemathesis.sh
#
# Needs the examples built (`cargo build --workspace --bins`) and schemathesis
# (`pip install -r scripts/interop-requirements.txt`). Prints the totals it tested.
set -euo pipefail

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis-target}"
examples="${EXAMPLES:-30}"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
internal_key="schemathesis-internal-key-0123456789abcdef"
work="$(mktemp -d)"
server=""
stop() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
# Schemathesis sends thousands of bad credentials from one address: within the default budget
# of failed authentications (30 a minute, tested on its own in examples/semantik/tests/semantik/hardening.rs)
# every later request, the schema download of the next phase included, would be a 429.
DATA_DIR="$work" BIND="127.0.0.1:$port" INTERNAL_API_KEY="$internal_key" RUST_LOG=warn \
    AUTH_FAILURES_PER_MINUTE=1000000 "$target/debug/semantik" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/server.log" 2>/dev/null && break
    sleep 0.1
done

# A user with an API key of every permission: unlike a JWT, logout does not revoke it.
json() { curl -sf -X POST "$base$1" -H 'content-type: application/json' "${@:3}" -d "$2"; }
field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
credential() {
    json /api/auth/register "{\"username\": \"$1\", \"email\": \"$1@example.com\", \"password\": \"correct horse battery\"}" >/dev/null
    local access
    access="$(json /api/auth/login "{\"username\": \"$1\", \"password\": \"correct horse battery\"}" | field access_token)"
    json /api/v2/api-keys '{"name": "schemathesis"}' -H "Authorization: Bearer $access" | field api_key
}
key="$(credential admin)"
destructive_key="$(credential second)"

run() {
    printf '\n==> schemathesis: %s\n' "$1"
    shift
    st run "$base/openapi.json" --checks "$checks" -n "$examples" --seed 1 \
        --generation-allow-x00 false "$@"
}
# Everything but the operations that revoke credentials, with the first user's key; then
# those, with the second user's; then the internal API with the service key.
run "user operations" -H "Authorization: Bearer $key" \
    --exclude-path-regex '^/api/internal' \
    --exclude-operation-id logout --exclude-operation-id revoke
run "revoking operations" -H "Authorization: Bearer $destructive_key" \
    --include-operation-id logout --include-operation-id revoke
run "internal API" -H "X-Internal-Api-Key: $internal_key" --include-path-regex '^/api/internal'

# Khoj: an API key minted through the real sign-in (the code read from the development mail
# log), and limits lifted for the flood of generated requests.
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null || true
mkdir -p "$work/khoj"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
DATA_DIR="$work/khoj" BIND="127.0.0.1:$port" RUST_LOG=info \
    KHOJ_AUTH_REQUESTS_PER_HOUR=1000000 KHOJ_MAGIC_LINK_REQUESTS_PER_DAY=1000000 \
    KHOJ_MAGIC_LINK_VERIFICATIONS_PER_DAY=1000000 "$target/debug/khoj" >"$work/khoj.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/khoj.log" 2>/dev/null && break
    sleep 0.1
done
json /auth/magic '{"email": "schemathesis@example.com"}' >/dev/null
for _ in $(seq 50); do
    grep -q "code=" "$work/khoj.log" && break
    sleep 0.1
done
code="$(grep -o 'code=[0-9]\{6\}' "$work/khoj.log" | tail -n 1 | cut -d= -f2)"
cookie="$(curl -s -o /dev/null -D - "$base/auth/magic?code=$code&email=schemathesis%40example.com" |
    sed -n 's/^set-cookie: \([^;]*\).*/\1/Ip' | head -n 1)"
khoj_key="$(curl -sf -X POST "$base/auth/token?token_name=schemathesis" -H "Cookie: $cookie" | field token)"
run "khoj" -H "Authorization: Bearer $khoj_key"
