#!/usr/bin/env bash
# Builds MinIO (a real S3-compatible server for the S3 tests) once and caches the
# binary: building it takes minutes, so CI reruns and later sessions reuse it.
set -euo pipefail
BIN_DIR="${FABRIK_TOOLS_BIN:-$HOME/.cache/fabrik-node/bin}"
# A pinned release that the module proxy serves; change it deliberately.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
mkdir -p "$BIN_DIR"
if [ -x "$BIN_DIR/minio" ]; then
  echo "[fabrik] minio already built: $BIN_DIR/minio"
  exit 0
fi
echo "[fabrik] building minio $MINIO_VERSION into $BIN_DIR (takes a few minutes, once)"
GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"
echo "[fabrik] minio ready: $BIN_DIR/minio"
