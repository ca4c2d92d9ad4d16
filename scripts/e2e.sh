#!/usr/bin/env bash
# Runs the end-to-end tests: real Gradle, Bazel, Nx and Turborepo (and MinIO,
# NATS, the registry clients crane, oras and skopeo, and bash/zsh/fish in
# tmux for shell activation) against real
# fabrik-node processes. Installs the tools first, then
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
# The ccache and WebDAV (rclone) tests drive these from PATH.
for tool in ccache gcc rclone; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[fabrik] ERROR: $tool missing after install-tools.sh" >&2; exit 1; }
done
# Shell activation runs in real shells through tmux: missing ones fail here.
for tool in tmux bash zsh fish; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[fabrik] ERROR: $tool not installed (scripts/install-tools.sh shells)" >&2; exit 1; }
done
# The registry clients of the BuildKit cache tests live outside PATH.
for t in "${FABRIK_TOOLS_BIN:-$HOME/.cache/fabrik-node/bin}/crane" "${FABRIK_TOOLS_BIN:-$HOME/.cache/fabrik-node/bin}/oras" "$(command -v skopeo || echo skopeo)"; do
  [ -x "$t" ] || { echo "[fabrik] ERROR: $t missing after install-tools.sh" >&2; exit 1; }
done
# The load-balancer test runs a real HAProxy (Debian's, in /usr/sbin).
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { echo "[fabrik] ERROR: haproxy missing after install-tools.sh" >&2; exit 1; }
export FABRIK_E2E_REQUIRE="${FABRIK_E2E_REQUIRE:-1}"
# The S3 API's clients: Debian's awscli 2.x (not a pip 1.x on PATH) and s3cmd.
for tool in /usr/bin/aws /usr/bin/s3cmd; do
  [ -x "$tool" ] || { echo "[fabrik] ERROR: $tool missing after install-tools.sh" >&2; exit 1; }
done
# The P2P test (as root) builds network namespaces with ip and tc.
for tool in ip tc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[fabrik] ERROR: $tool missing (scripts/install-tools.sh netns)" >&2; exit 1; }
done
# The dashboard test drives headless Chromium: required, never skipped.
command -v chromium >/dev/null 2>&1 || { echo "[fabrik] ERROR: chromium missing after install-tools.sh" >&2; exit 1; }
echo "[fabrik] go test ./e2e/... (real build tools; several minutes)"
exec go test ./e2e/... -count=1 -timeout 20m "$@"
