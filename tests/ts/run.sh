#!/usr/bin/env bash
# End-to-end scenarios with the TypeScript SDK (@temporalio/* from npm, versions pinned in
# package-lock.json) against a Temporal-API server:
#   tests/ts/run.sh HOST:PORT [NAMESPACE] [SCENARIO ...]
# Installs the pinned packages (npm ci; Node 20.3+ and npm needed), then runs the scenarios:
# PASS/FAIL per scenario and a closing 'N passed, N failed' line; exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: run.sh HOST:PORT [NAMESPACE] [SCENARIO ...]}"
shift
cd "$here"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ts e2e: node and npm are required" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if ! npm ci --no-audit --no-fund --loglevel=error >npm-ci.log 2>&1; then
    echo "ts e2e: npm ci failed:" >&2
    tail -n 30 npm-ci.log >&2
    echo "0 passed, 1 failed"
    exit 1
fi
exec node src/main.js "$target" "$@"
