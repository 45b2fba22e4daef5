#!/usr/bin/env bash
# `make lint`: ruff (lint + format check, config in pyproject.toml) on the whole repository and
# pylint with pylint_odoo (OCA configuration, .pylintrc) on every addon under addons/.
# Zero findings pass; every check runs even when an earlier one fails.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

failed=()

step "ruff check"
"$PYTHON" -m ruff check --no-fix --output-format=concise . || failed+=("ruff check")

step "ruff format --check"
"$PYTHON" -m ruff format --check . || failed+=("ruff format")

mapfile -t addons < <(find addons -mindepth 2 -maxdepth 2 -name __manifest__.py -printf '%h\n' | sort)
if [ ${#addons[@]} -eq 0 ]; then
    step "pylint-odoo: no addon with a __manifest__.py under addons/"
    failed+=("pylint (no addon)")
else
    step "pylint-odoo (.pylintrc: OCA mandatory + optional checks) on ${addons[*]}"
    # Text output: the rc file's colorized format is for terminals, not CI logs.
    if "$PYTHON" -m pylint --rcfile=.pylintrc --output-format=text "${addons[@]}"; then
        note "pylint-odoo: 0 findings"
    else
        failed+=("pylint-odoo")
    fi
fi

if [ ${#failed[@]} -gt 0 ]; then
    joined=$(printf ', %s' "${failed[@]}")
    echo "lint FAILED: ${joined:2}"
    exit 1
fi
echo "lint passed: ruff check, ruff format, pylint-odoo"
