#!/usr/bin/env bash
# Regenerates the Fabrik protocol's Go code with pinned tools, so generated
# files only change when the .proto or a pinned version changes. The output is
# committed: a clean clone builds without protoc.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR="${FABRIK_TOOLS_BIN:-$HOME/.cache/fabrik-node/bin}"
# Pinned: protoc-gen-go matches google.golang.org/protobuf in go.mod;
# protoc-gen-go-grpc is a release the module proxy serves whose output the
# grpc version in go.mod supports.
PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_GO_GRPC_VERSION="v1.6.2"

mkdir -p "$BIN_DIR"
stamp() { echo "$BIN_DIR/.$1-$2"; }
install_tool() { # name module version
  if [ ! -x "$BIN_DIR/$1" ] || [ ! -e "$(stamp "$1" "$3")" ]; then
    echo "[fabrik] installing $1 $3 into $BIN_DIR"
    # Outside the module, so the tools never touch go.mod.
    (cd / && GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "$2@$3")
    rm -f "$BIN_DIR/.$1-"*
    touch "$(stamp "$1" "$3")"
  fi
}
install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

if ! command -v protoc >/dev/null; then
  echo "[fabrik] protoc not found: apt-get install -y protobuf-compiler" >&2
  exit 1
fi

PATH="$BIN_DIR:$PATH" protoc \
  --proto_path=proto \
  --go_out=. --go_opt=module=github.com/tuist/fabrik-node \
  --go-grpc_out=. --go-grpc_opt=module=github.com/tuist/fabrik-node \
  proto/fabrik/v1/fabrik.proto proto/fabrik/p2p/v1/p2p.proto
echo "[fabrik] generated proto/fabrik/v1 and proto/fabrik/p2p/v1 with protoc $(protoc --version | cut -d' ' -f2), protoc-gen-go $PROTOC_GEN_GO_VERSION, protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION"
