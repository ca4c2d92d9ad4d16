#!/usr/bin/env bash
# make soak: mixed traffic for SOAK_DURATION (default 30m) against an edge
# and a regional backed by MinIO, on 127.0.0.1, watching both processes for
# leaks (bench/soak). The edge has a small max_size (SOAK_EDGE_MAX_SIZE,
# default 256MB) and the regional too (SOAK_REGIONAL_MAX_SIZE, default
# 512MB), so both evict and old artifacts come back through the regional
# from S3. Fails on any request error or unbounded RSS/goroutine growth
# (see bench/soak for the rule). Not part of `make test`.
#
# Environment: SOAK_DURATION, SOAK_CLIENTS (default 4), SOAK_WRITE_RATE
# (bytes/s of new artifacts, default 2 MiB/s; 0 unbounded), SOAK_REPORT
# (default 1m), SOAK_GROWTH (default 1.5), SOAK_ALLOW_LOST=true (report
# acknowledged artifacts missing from every tier without failing), FABRIK_MINIO_BIN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
DURATION=${SOAK_DURATION:-30m}
MINIO=${FABRIK_MINIO_BIN:-$HOME/.cache/fabrik-node/bin/minio}
S3_USER=fabrik-soak
S3_PASS=fabrik-soak-secret

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fabrik-soak.XXXXXX")
TAG=soak
source scripts/lib/nodes.sh
on_exit_cleanup

echo "[soak] building fabrik-node and the soak tools"
$GO build -o bin/fabrik-node ./cmd/fabrik-node
BIN=$PWD/bin/fabrik-node
$GO build -o "$WORK/soak" ./bench/soak
$GO build -o "$WORK/loadgen" ./bench/loadgen
$GO build -o "$WORK/misspath" ./bench/misspath
[ -x "$MINIO" ] || bash scripts/install-minio.sh

mapfile -t PORTS < <("$WORK/loadgen" -op ports -n 14)
port() { echo "${PORTS[$1]}"; }

# write_config FILE DIR MAX_SIZE HTTP GRPC HEALTH API FABRIK [UPSTREAM_TOML]
write_config() {
  cat >"$1" <<EOT
[cache]
dir = "$2"
max_size = "$3"
max_artifact_size = "16MB"
[build_tools]
enabled = ["gradle"]
http_bind = "127.0.0.1:$4"
grpc_bind = "127.0.0.1:$5"
[fabrik]
bind = "127.0.0.1:$8"
[observability]
log_level = "warn"
log_format = "text"
health_bind = "127.0.0.1:$6"
api_bind = "127.0.0.1:$7"
[runtime]
graceful_shutdown_timeout = "5s"
${9:-}
EOT
}


S3=http://127.0.0.1:$(port 0)
MINIO_ROOT_USER=$S3_USER MINIO_ROOT_PASSWORD=$S3_PASS MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
  "$MINIO" server --quiet --address "127.0.0.1:$(port 0)" --console-address "127.0.0.1:$(port 1)" "$WORK/minio" \
  >"$WORK/minio.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -fsS "$S3/minio/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
# misspath creates the bucket (the bench's tool; -sizes "" measures nothing).
"$WORK/misspath" -s3-endpoint "$S3" -access-key "$S3_USER" -secret-key "$S3_PASS" -create-bucket -sizes "" >/dev/null

write_config "$WORK/regional.toml" "$WORK/regional" "${SOAK_REGIONAL_MAX_SIZE:-512MB}" \
  "$(port 2)" "$(port 3)" "$(port 4)" "$(port 5)" "$(port 6)" "[[upstream]]
url = \"s3://bench/soak/\"
endpoint = \"$S3\"
region = \"us-east-1\"
access_key = \"$S3_USER\"
secret_key = \"$S3_PASS\"
timeout = \"30s\""
write_config "$WORK/edge.toml" "$WORK/edge" "${SOAK_EDGE_MAX_SIZE:-256MB}" \
  "$(port 7)" "$(port 8)" "$(port 9)" "$(port 10)" "$(port 11)" "[[upstream]]
url = \"grpc://127.0.0.1:$(port 6)\"
timeout = \"30s\""
start_node regional regional "$WORK/regional.toml" "$(port 4)"
start_node edge edge "$WORK/edge.toml" "$(port 9)"

status=0
"$WORK/soak" -url "http://127.0.0.1:$(port 7)" -duration "$DURATION" \
  -clients "${SOAK_CLIENTS:-4}" -write-rate "${SOAK_WRITE_RATE:-2097152}" -allow-lost="${SOAK_ALLOW_LOST:-false}" -report "${SOAK_REPORT:-1m}" -growth "${SOAK_GROWTH:-1.5}" \
  -pids "edge=$pid_edge,regional=$pid_regional" \
  -metrics "edge=http://127.0.0.1:$(port 10),regional=http://127.0.0.1:$(port 5)" || status=$?
if [ "$status" != 0 ]; then
  echo "[soak] node logs (last 40 lines each):" >&2
  tail -n 40 "$WORK/edge.log" "$WORK/regional.log" >&2
fi
exit "$status"
