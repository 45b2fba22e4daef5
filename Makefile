# MCP Odoo Suite: the commands of README.md. Each target is a script under scripts/.
# PYTHON must be the Python that runs Odoo 19 (default: python3).
PYTHON ?= python3
export PYTHON

.DEFAULT_GOAL := help
.PHONY: help run test lint bench deps services

help:
	@echo "make run       set up what is missing and serve the suite on http://127.0.0.1:8069"
	@echo "make test      lint + plain, odoo and browser test tiers (what CI runs)"
	@echo "make lint      ruff check, ruff format --check, pylint-odoo"
	@echo "make bench     run every bench/*.py"
	@echo "make deps      install the missing Python packages of requirements.txt"
	@echo "make services  start (or install) PostgreSQL and Redis, create the database role"

run:
	@bash scripts/run.sh

test:
	@$(PYTHON) scripts/run_tests.py

lint:
	@bash scripts/lint.sh

bench:
	@bash scripts/bench.sh

deps:
	@$(PYTHON) scripts/python_deps.py

services:
	@bash scripts/services.sh postgres db-role redis
