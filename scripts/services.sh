# Starts the real services the test suite needs, when they are not already given, and stops
# what it started when the calling shell exits. Sourced by scripts/test.sh.
#
# Exports PORTCULLIS_TEST_POSTGRES_URL and PORTCULLIS_TEST_REDIS_URL (and, for the browser test,
# PORTCULLIS_TEST_CHROMIUM and PORTCULLIS_TEST_PLAYWRIGHT; for the mail tests, PORTCULLIS_TEST_SMTP and
# PORTCULLIS_TEST_SMTP_MAILDIR; for the OIDC tests, PORTCULLIS_TEST_OIDC_PROVIDER). Set any
# beforehand to use your own.

services_dir="$(mktemp -d /tmp/portcullis-services.XXXXXX)"
chmod 755 "$services_dir"
services_cleanup=()

services_stop() {
    local i
    for ((i = ${#services_cleanup[@]} - 1; i >= 0; i--)); do
        eval "${services_cleanup[$i]}" >/dev/null 2>&1 || true
    done
    rm -rf "$services_dir"
}
trap services_stop EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

apt_updated=false
apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "cannot install $*: no apt-get on this machine" >&2
        return 1
    fi
    if [ "$apt_updated" = false ]; then
        apt-get update -qq >/dev/null
        apt_updated=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
    if [ -n "${PORTCULLIS_TEST_POSTGRES_URL:-}" ]; then
        return 0
    fi
    if [ -z "$(pg_bin)" ]; then
        apt_install postgresql || return 1
    fi
    local bin port data
    bin="$(pg_bin)"
    port="$(free_port)"
    data="$services_dir/postgres"
    mkdir -p "$data" && chown postgres:postgres "$data"
    runuser -u postgres -- "$bin/initdb" -D "$data" -A trust -U postgres --no-sync >"$services_dir/initdb.log" 2>&1 ||
        { cat "$services_dir/initdb.log" >&2; return 1; }
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w start \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        >/dev/null || { cat "$data/server.log" >&2; return 1; }
    services_cleanup+=("runuser -u postgres -- '$bin/pg_ctl' -D '$data' -m immediate stop")
    export PORTCULLIS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on port $port"
}

start_redis() {
    if [ -n "${PORTCULLIS_TEST_REDIS_URL:-}" ]; then
        return 0
    fi
    if ! command -v redis-server >/dev/null; then
        apt_install redis-server || return 1
    fi
    local port
    port="$(free_port)"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$services_dir/redis.pid" --logfile "$services_dir/redis.log" >/dev/null
    for _ in $(seq 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    services_cleanup+=("redis-cli -p $port shutdown nosave")
    export PORTCULLIS_TEST_REDIS_URL="redis://127.0.0.1:$port"
    echo "Redis $(redis-server --version | awk '{print $3}') on port $port"
}

# Chromium (Debian) and Playwright (npm, pinned) for the browser tests; exports
# PORTCULLIS_TEST_CHROMIUM and PORTCULLIS_TEST_PLAYWRIGHT (the node_modules directory).
playwright_version=1.64.1
install_browser() {
    if [ -n "${PORTCULLIS_TEST_CHROMIUM:-}" ] && [ -n "${PORTCULLIS_TEST_PLAYWRIGHT:-}" ]; then
        return 0
    fi
    command -v chromium >/dev/null || apt_install chromium || return 1
    command -v npm >/dev/null || apt_install nodejs npm || return 1
    local dir="$HOME/.cache/portcullis-browser"
    if [ ! -f "$dir/node_modules/playwright-core/package.json" ] ||
        ! grep -q "\"version\": \"$playwright_version\"" "$dir/node_modules/playwright-core/package.json"; then
        mkdir -p "$dir"
        (cd "$dir" && npm install --silent --no-audit --no-fund --save-exact "playwright-core@$playwright_version") || return 1
    fi
    export PORTCULLIS_TEST_CHROMIUM="$(command -v chromium)"
    export PORTCULLIS_TEST_PLAYWRIGHT="$dir/node_modules"
    echo "$(chromium --version 2>/dev/null | head -n 1), playwright-core $playwright_version"
}

# An OpenID Connect provider (npm `oidc-provider`, pinned) for the OIDC sign-in tests, beside
# Playwright; exports PORTCULLIS_TEST_OIDC_PROVIDER (the node_modules directory). Each test
# starts its own provider (tests/oidc/provider.mjs) on a free port.
oidc_provider_version=9.13.3
install_oidc_provider() {
    if [ -n "${PORTCULLIS_TEST_OIDC_PROVIDER:-}" ]; then
        return 0
    fi
    command -v npm >/dev/null || apt_install nodejs npm || return 1
    local dir="$HOME/.cache/portcullis-browser"
    if [ ! -f "$dir/node_modules/oidc-provider/package.json" ] ||
        ! grep -q "\"version\": \"$oidc_provider_version\"" "$dir/node_modules/oidc-provider/package.json"; then
        mkdir -p "$dir"
        (cd "$dir" && npm install --silent --no-audit --no-fund --save-exact "oidc-provider@$oidc_provider_version") || return 1
    fi
    export PORTCULLIS_TEST_OIDC_PROVIDER="$dir/node_modules"
    echo "oidc-provider $oidc_provider_version (node $(node --version))"
}

# A missing service fails the run in CI; elsewhere the tests that need it skip loudly.
require_service() {
    local name="$1"
    shift
    if ! "$@"; then
        if [ "${CI:-}" = true ]; then
            echo "could not start $name, and CI=true: failing" >&2
            exit 1
        fi
        echo "WARNING: could not start $name; the tests that need it will be skipped" >&2
    fi
}

# An SMTP sink (Python aiosmtpd, from PyPI) that delivers into a maildir, for tests/mail.rs;
# exports PORTCULLIS_TEST_SMTP (host:port) and PORTCULLIS_TEST_SMTP_MAILDIR.
start_smtp() {
    if [ -n "${PORTCULLIS_TEST_SMTP:-}" ] && [ -n "${PORTCULLIS_TEST_SMTP_MAILDIR:-}" ]; then
        return 0
    fi
    python3 -c 'import aiosmtpd' 2>/dev/null || install_python_interop || return 1
    local port dir pid
    port="$(free_port)"
    dir="$services_dir/maildir"
    python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$dir" \
        >"$services_dir/smtp.log" 2>&1 &
    pid=$!
    services_cleanup+=("kill $pid")
    python3 - "$port" <<'PY' || return 1
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
    export PORTCULLIS_TEST_SMTP="127.0.0.1:$port" PORTCULLIS_TEST_SMTP_MAILDIR="$dir"
    echo "aiosmtpd $(python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)') on 127.0.0.1:$port"
}

# The Python libraries of the seed applications, for the interop tests (PyPI, pinned).
install_python_interop() {
    python3 -c 'import jwt, jose, passlib.hash, argon2, cryptography, schemathesis, aiosmtpd' 2>/dev/null && return 0
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        -r "$(dirname "${BASH_SOURCE[0]}")/interop-requirements.txt"
}

# cargo-fuzz for the fuzz smoke run; the nightly toolchain it needs comes with the machine.
install_cargo_fuzz() {
    rustup toolchain list | grep -q '^nightly' || {
        echo "the nightly toolchain is missing; cargo fuzz needs it" >&2
        return 1
    }
    cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
}

# cargo-deny for the licence, ban and source checks (crates.io).
install_cargo_deny() {
    cargo deny --version >/dev/null 2>&1 || cargo install --locked cargo-deny
}

# cargo-semver-checks for the public-API check against the last release baseline (crates.io).
install_cargo_semver_checks() {
    cargo semver-checks --version >/dev/null 2>&1 || cargo install --locked cargo-semver-checks
}
