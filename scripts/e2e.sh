#!/usr/bin/env bash
# Runs the end-to-end tests: real Gradle, Bazel, Nx and Turborepo (and MinIO,
# NATS) against real fabrik-node processes. Installs the tools first, then
# requires them: after an install, a missing tool is a failure, not a skip.
#
# Usage: scripts/e2e.sh [go test flags...]   e.g. scripts/e2e.sh -run Gradle -v
#
# Environment: everything scripts/install-tools.sh reads (FABRIK_TOOLS_DIR,
# FABRIK_TOOLS_BIN), FABRIK_NODE_BIN (a prebuilt fabrik-node to test instead of
# building ./cmd/fabrik-node), FABRIK_E2E_REQUIRE (default 1 here).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-tools.sh all
export FABRIK_E2E_REQUIRE="${FABRIK_E2E_REQUIRE:-1}"
# The dashboard test drives headless Chromium: required, never skipped.
command -v chromium >/dev/null 2>&1 || { echo "[fabrik] ERROR: chromium missing after install-tools.sh" >&2; exit 1; }
echo "[fabrik] go test ./e2e/... (real build tools; several minutes)"
exec go test ./e2e/... -count=1 -timeout 20m "$@"
