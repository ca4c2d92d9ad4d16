#!/usr/bin/env bash
# Runs every go test -fuzz target for FUZZTIME each (default 60s; `make
# fuzz-short`, part of `make test`, uses 3s), one after the other:
# `go test -fuzz` takes one package and one target per run. The targets'
# seed corpora (f.Add, testdata/fuzz/) also run as plain tests in `make
# unit`. A crash leaves its input under the package's testdata/fuzz/: keep
# it there (it becomes a regression test) and fix the parser.
#
#   FUZZTIME=10m bash scripts/fuzz.sh            # every target, 10 minutes each
#   bash scripts/fuzz.sh ./adapters/oci FuzzRange  # one target
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}

# package target: every parser of outside input (ARCHITECTURE.md, "Fuzzing").
TARGETS=(
  "./adapters/gradle FuzzValidKey"
  "./adapters/nx FuzzValidKey"
  "./adapters/turbo FuzzNamespace"
  "./adapters/ccache FuzzValidKey"
  "./adapters/bazel FuzzResourceName"
  "./adapters/bazel FuzzDigest"
  "./adapters/bazel FuzzDecodeFindMissing"
  "./internal/hexhash FuzzHexHash"
  "./adapters/fabrikgrpc FuzzPutStream"
  "./auth FuzzValidate"
  "./config FuzzLoad"
  "./config FuzzEnvName"
  "./adapters/s3api FuzzHeaderAuth"
  "./adapters/s3api FuzzQueryAuth"
  "./adapters/s3api FuzzRange"
  "./adapters/oci FuzzRoute"
  "./adapters/oci FuzzRange"
  "./adapters/oci FuzzContentRange"
  "./adapters/webdav FuzzPropfind"
  "./adapters/webdav FuzzParsePath"
  "./gocacheprog FuzzRequestReader"
  "./recipe/script FuzzParse"
)
if [ $# -eq 2 ]; then TARGETS=("$1 $2"); fi

failed=()
for t in "${TARGETS[@]}"; do
  read -r pkg name <<<"$t"
  echo "[fuzz] $pkg $name ($FUZZTIME)"
  if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel 2 "$pkg" >"${TMPDIR:-/tmp}/fabrik-fuzz.out" 2>&1; then
    cat "${TMPDIR:-/tmp}/fabrik-fuzz.out"
    failed+=("$pkg $name")
  fi
done
rm -f "${TMPDIR:-/tmp}/fabrik-fuzz.out"
if [ ${#failed[@]} -gt 0 ]; then
  echo "[fuzz] FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "[fuzz] ${#TARGETS[@]} targets passed"
