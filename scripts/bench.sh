#!/usr/bin/env bash
# `make bench`: run every bench/*.py against the local Redis and PostgreSQL (the MCP bench runs
# a real Odoo); fails when any of them fails.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

shopt -s nullglob
scripts=(bench/*.py)
[ ${#scripts[@]} -gt 0 ] || die "no benchmark script under bench/"
bash scripts/services.sh redis postgres db-role || exit 1

failed=()
for script in "${scripts[@]}"; do
    step "$PYTHON $script"
    "$PYTHON" "$script" || failed+=("$script")
done
if [ ${#failed[@]} -gt 0 ]; then
    printf 'bench FAILED: %s\n' "${failed[*]}"
    exit 1
fi
echo "bench passed: ${#scripts[@]} script(s)"
