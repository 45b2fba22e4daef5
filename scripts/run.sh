#!/usr/bin/env bash
# `make run`: set up whatever is missing, then serve the suite on http://127.0.0.1:8069.
# Safe to run again: every step checks before it acts. Settings (environment):
#   MCP_DB (mcp_suite)  MCP_LANG (en_US, e.g. pt_BR; used when the database is created)
#   MCP_HTTP_PORT (8069)  MCP_GEVENT_PORT (8072)  MCP_WORKERS (2)  and MCP_DB_*/MCP_REDIS_* (lib.sh)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

MCP_DB=${MCP_DB:-mcp_suite}
MCP_LANG=${MCP_LANG:-en_US}
MCP_HTTP_PORT=${MCP_HTTP_PORT:-8069}
MCP_GEVENT_PORT=${MCP_GEVENT_PORT:-8072}
MCP_WORKERS=${MCP_WORKERS:-2}
CONF="$RUN_DIR/odoo.conf"
[[ "$MCP_DB" =~ ^[A-Za-z0-9_.-]+$ ]] || die "MCP_DB may hold letters, digits, '_', '.' and '-' only"

step "Checking for Odoo 19"
"$PYTHON" scripts/odoo_env.py check || exit 1

step "Python packages (requirements.txt)"
"$PYTHON" scripts/python_deps.py

step "Services: PostgreSQL, database role '$MCP_DB_USER', Redis"
bash scripts/services.sh postgres db-role redis

addons=$("$PYTHON" scripts/odoo_env.py suite-addons)
[ -n "$addons" ] || die "no addon with a __manifest__.py under addons/"

step "Writing $CONF from odoo.conf.example"
"$PYTHON" scripts/odoo_env.py write-config odoo.conf.example "$CONF" \
    "addons_path=$("$PYTHON" scripts/odoo_env.py addons-path)" \
    "data_dir=$RUN_DIR/data" \
    "db_host=$MCP_DB_HOST" "db_port=$MCP_DB_PORT" "db_user=$MCP_DB_USER" "db_password=$MCP_DB_PASSWORD" \
    "db_name=$MCP_DB" "dbfilter=^$MCP_DB\$" \
    "http_port=$MCP_HTTP_PORT" "gevent_port=$MCP_GEVENT_PORT" "workers=$MCP_WORKERS"

odoo=("$PYTHON" scripts/odoo_cli.py)  # not `-m odoo`: see odoo_cli.py
# One-off runs (database set-up) need no workers, crons or job runner.
setup_flags=(-c "$CONF" -d "$MCP_DB" --stop-after-init --workers=0 --max-cron-threads=0 --log-level=warn)

if tcp_open 127.0.0.1 "$MCP_HTTP_PORT"; then
    die "port $MCP_HTTP_PORT is already in use (another Odoo?): stop it or set MCP_HTTP_PORT"
fi

create_database() {
    "${odoo[@]}" db -c "$CONF" init "$MCP_DB" --language "$MCP_LANG" >"$RUN_DIR/db-init.log" 2>&1 ||
        { cat "$RUN_DIR/db-init.log"; return 1; }
    "${odoo[@]}" "${setup_flags[@]}" -i "$addons"
}

if [ -z "$(psql_odoo -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$MCP_DB'")" ]; then
    step "Creating database $MCP_DB (language $MCP_LANG) with $addons installed: takes a few minutes"
    if ! create_database; then
        # Nothing half-written: the next `make run` starts over.
        "${odoo[@]}" db -c "$CONF" drop "$MCP_DB" >/dev/null 2>&1 || true
        die "creating database $MCP_DB failed (see above); it has been removed"
    fi
    login="admin / admin (new database: change the password in Preferences)"
else
    note "database $MCP_DB exists"
    # Addons added to the suite since the database was created get installed too.
    installed=$(psql_odoo -d "$MCP_DB" -tA -c "SELECT name FROM ir_module_module WHERE state = 'installed'")
    missing=()
    for addon in ${addons//,/ }; do
        grep -qx "$addon" <<<"$installed" || missing+=("$addon")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        step "Installing ${missing[*]} into $MCP_DB"
        "${odoo[@]}" "${setup_flags[@]}" -i "$(IFS=,; echo "${missing[*]}")" || die "installing ${missing[*]} failed (see above)"
    fi
    login="admin (with the password you gave it; admin if unchanged)"
fi

step "Serving Odoo on http://127.0.0.1:$MCP_HTTP_PORT (database $MCP_DB, $MCP_WORKERS HTTP workers, queue_job runner)"
note "log in as: $login"
note "configuration: $CONF  (from odoo.conf.example; Redis and AI settings: Settings > AI Integration)"
note "stop with Ctrl+C"
exec "${odoo[@]}" -c "$CONF"
