#!/usr/bin/env bash
# Make the services and system packages the suite needs available; each is checked first, so
# running this again changes nothing.
#   bash scripts/services.sh [postgres] [db-role] [redis] [chromium]   (default: postgres db-role redis)
# Local services missing or stopped are installed from Debian packages and started; remote ones
# (MCP_DB_HOST / MCP_REDIS_HOST not on this machine) are only checked.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$seconds"); do
        "$@" && return 0
        sleep 1
    done
    die "$what did not come up within ${seconds}s"
}

postgres_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$MCP_DB_HOST" -p "$MCP_DB_PORT"
    else
        tcp_open "$MCP_DB_HOST" "$MCP_DB_PORT"
    fi
}

ensure_postgres() {
    if postgres_ready; then
        note "PostgreSQL answers on $MCP_DB_HOST:$MCP_DB_PORT"
        command -v psql >/dev/null 2>&1 || apt_install postgresql-client
        return
    fi
    is_local_host "$MCP_DB_HOST" || die "PostgreSQL at $MCP_DB_HOST:$MCP_DB_PORT does not answer; start it there"
    if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
        step "PostgreSQL is not installed: installing it from Debian"
        apt_install postgresql
        postgres_ready && return
    fi
    step "Starting PostgreSQL (port $MCP_DB_PORT)"
    local version cluster
    # pg_lsclusters columns: version cluster port status owner data-dir log-file
    read -r version cluster < <(pg_lsclusters --no-header | awk -v port="$MCP_DB_PORT" '$3 == port {print $1, $2; exit}') || true
    if [ -z "${version:-}" ]; then
        version=$(basename "$(compgen -G "/usr/lib/postgresql/*" | sort -V | tail -n 1)")
        cluster=main
        [ ! -d "/etc/postgresql/$version/$cluster" ] || cluster="port$MCP_DB_PORT"
        note "no cluster listens on port $MCP_DB_PORT: creating cluster $version/$cluster"
        as_root pg_createcluster -p "$MCP_DB_PORT" "$version" "$cluster" >/dev/null || die "pg_createcluster failed"
    fi
    if [ -d /run/systemd/system ]; then
        as_root pg_ctlcluster "$version" "$cluster" start || die "could not start PostgreSQL $version/$cluster"
    else # no systemd (containers, CI): run the cluster directly
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start ||
            die "could not start PostgreSQL $version/$cluster"
    fi
    wait_for 30 "PostgreSQL" postgres_ready
    note "PostgreSQL $version/$cluster started"
}

# SQL run by the PostgreSQL superuser: over TCP where trust allows it, else as the postgres OS user.
psql_superuser() {
    psql -X -w -q -v ON_ERROR_STOP=1 -h "$MCP_DB_HOST" -p "$MCP_DB_PORT" -U postgres -d postgres "$@" 2>/dev/null && return
    is_local_host "$MCP_DB_HOST" || return 1
    if is_root; then
        runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$MCP_DB_PORT" -d postgres "$@"
    else
        sudo -n -u postgres psql -X -q -v ON_ERROR_STOP=1 -p "$MCP_DB_PORT" -d postgres "$@"
    fi
}

ensure_db_role() {
    [ "$MCP_DB_USER" != postgres ] || die "Odoo refuses to run as the 'postgres' superuser: set MCP_DB_USER to another role"
    [[ "$MCP_DB_USER" =~ ^[a-z_][a-z0-9_]*$ ]] || die "MCP_DB_USER must be a plain role name (got '$MCP_DB_USER')"
    local error exists
    if error=$(psql_odoo -d postgres -c 'SELECT 1' 2>&1 >/dev/null); then
        note "database role '$MCP_DB_USER' can log in"
        return
    fi
    # PostgreSQL answers "password authentication failed" for a role that does not exist too,
    # so ask the superuser.
    exists=$(psql_superuser -tA -c "SELECT 1 FROM pg_roles WHERE rolname = '$MCP_DB_USER'") ||
        die "cannot log in as '$MCP_DB_USER' ($error), nor check the role as the postgres superuser (run as root, or create the role yourself: createuser -d -P $MCP_DB_USER)"
    [ "$exists" != 1 ] || die "role '$MCP_DB_USER' exists but cannot log in (set MCP_DB_PASSWORD to its password): $error"
    step "Creating the database role '$MCP_DB_USER' (LOGIN CREATEDB, password from MCP_DB_PASSWORD)"
    local password=${MCP_DB_PASSWORD//\'/\'\'}
    psql_superuser -c "CREATE ROLE \"$MCP_DB_USER\" LOGIN CREATEDB PASSWORD '$password'" ||
        die "could not create role '$MCP_DB_USER': run as root, or create it yourself: createuser -d -P $MCP_DB_USER"
    psql_odoo -d postgres -c 'SELECT 1' >/dev/null || die "role '$MCP_DB_USER' was created but cannot log in (check pg_hba.conf)"
}

ensure_redis() {
    if tcp_open "$MCP_REDIS_HOST" "$MCP_REDIS_PORT"; then
        note "Redis answers on $MCP_REDIS_HOST:$MCP_REDIS_PORT"
        return
    fi
    is_local_host "$MCP_REDIS_HOST" || die "Redis at $MCP_REDIS_HOST:$MCP_REDIS_PORT does not answer; start it there"
    if ! command -v redis-server >/dev/null 2>&1; then
        step "Redis is not installed: installing it from Debian"
        apt_install redis-server
        tcp_open "$MCP_REDIS_HOST" "$MCP_REDIS_PORT" && return
    fi
    step "Starting Redis on 127.0.0.1:$MCP_REDIS_PORT (no persistence; log in .run/redis/redis.log)"
    mkdir -p "$RUN_DIR/redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$MCP_REDIS_PORT" --save "" --appendonly no \
        --dir "$RUN_DIR/redis" --logfile "$RUN_DIR/redis/redis.log" >/dev/null
    wait_for 10 "Redis" tcp_open "$MCP_REDIS_HOST" "$MCP_REDIS_PORT"
}

# The browser the tours run in; Odoo's test framework looks for these names on PATH.
ensure_chromium() {
    local name
    for name in google-chrome chromium chromium-browser google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then
            note "browser for the tours: $(command -v "$name")"
            return
        fi
    done
    step "Chromium is not installed: installing it from Debian (for the browser tests)"
    apt_install chromium
}

[ $# -gt 0 ] || set -- postgres db-role redis
for item in "$@"; do
    case "$item" in
    postgres) ensure_postgres ;;
    db-role) ensure_db_role ;;
    redis) ensure_redis ;;
    chromium) ensure_chromium ;;
    *) die "unknown item '$item' (postgres, db-role, redis, chromium)" ;;
    esac
done
