# Shared shell helpers for the suite's scripts (sourced, not run).
# Every setting can be overridden from the environment; README.md lists them.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR="$ROOT/.run"
PYTHON=${PYTHON:-python3}
MCP_DB_HOST=${MCP_DB_HOST:-127.0.0.1}
MCP_DB_PORT=${MCP_DB_PORT:-5432}
MCP_DB_USER=${MCP_DB_USER:-odoo}
MCP_DB_PASSWORD=${MCP_DB_PASSWORD:-odoo}
MCP_REDIS_HOST=${MCP_REDIS_HOST:-127.0.0.1}
MCP_REDIS_PORT=${MCP_REDIS_PORT:-6379}
export ROOT RUN_DIR PYTHON MCP_DB_HOST MCP_DB_PORT MCP_DB_USER MCP_DB_PASSWORD MCP_REDIS_HOST MCP_REDIS_PORT
# Package installs never wait for a question (CI has no stdin).
export DEBIAN_FRONTEND=noninteractive

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as root: directly when we are root, through passwordless sudo otherwise.
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

# Install Debian packages; refreshes the package lists once per day (first install on a fresh machine).
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* with your system's package manager"
    mkdir -p "$RUN_DIR"
    local stamp="$RUN_DIR/apt-lists-updated"
    if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
        step "Refreshing the Debian package lists (apt-get update)"
        as_root apt-get update -q || die "apt-get update failed (needs root or passwordless sudo)"
        touch "$stamp"
    fi
    step "Installing Debian packages: $*"
    as_root apt-get install -y -q --no-install-recommends "$@" ||
        die "apt-get install $* failed (needs root or passwordless sudo)"
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

is_local_host() { case "$1" in 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac; }

# psql as the suite's role, never prompting for a password.
psql_odoo() {
    PGPASSWORD="$MCP_DB_PASSWORD" psql -X -w -q -v ON_ERROR_STOP=1 -h "$MCP_DB_HOST" -p "$MCP_DB_PORT" \
        -U "$MCP_DB_USER" "$@"
}
