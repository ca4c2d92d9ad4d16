#!/usr/bin/env bash
# make bench: the Go benchmarks of the packages that have them, then load
# scenarios against real fabrik-node processes on 127.0.0.1:
#
#   1. one edge, Gradle adapter: PUT and GET of 4 KiB, 1 MiB and 64 MiB with
#      16 concurrent clients (ops/s, MB/s, p50/p99, peak RSS of the node);
#   2. layer 2, edge -> regional -> MinIO: miss-path latency of 4 KiB and
#      1 MiB per tier against a direct S3 GET, and a 256 MiB artifact through
#      both layers with the peak RSS of every node;
#   3. GOCACHEPROG: wall time of `go build ./...` of a generated module
#      (BENCH_GOMOD_PACKAGES packages, default 60) cold, from a warm edge with
#      an empty helper directory, from the helper's warm directory, and with
#      the go command's plain local GOCACHE.
#
# Everything runs in a temp dir that is removed on exit; every process the
# script starts is stopped on exit, whatever happens. A full run takes about
# 5-8 minutes on 2 cores.
#
# Environment:
#   BENCHTIME      -benchtime of the Go benchmarks (default 300ms)
#   BENCH_GO=0     skip the Go benchmarks;  BENCH_LOAD=0 skip the scenarios;
#   BENCH_SOLO=0   skip scenario 1;         BENCH_LAYER2=0 skip scenario 2
#   BENCH_GOCACHE=0 skip scenario 3
#   BENCH_SIZES    sizes of scenario 1 (default "4KiB 1MiB 64MiB")
#   BENCH_BAZEL_REMOTE  optional: path to a built bazel-remote binary, added
#                  to scenario 1's run (its HTTP /ac/ with validation off)
#   BENCH_HOT_COMPARE=1 adds an edge with the hot tier off to scenario 1
#   BENCH_FSYNC    cache.fsync of the nodes (default false, the shipped edge default)
#   BENCH_OUT      also write the summary to this file
#   FABRIK_MINIO_BIN  MinIO binary (default: the one scripts/install-minio.sh caches)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
BENCHTIME=${BENCHTIME:-300ms}
FSYNC=${BENCH_FSYNC:-false}
GO_PKGS=(./store ./auth ./adapters/bazel ./adapters/turbo ./adapters/s3api ./adapters/oci ./tier/fabrik ./tier/s3 ./gocacheprog)
# Benchmarks whose every iteration is seconds of setup (rebuilding a 100k
# entry index) run a fixed count instead of for BENCHTIME.
SLOW_BENCH=${BENCH_SLOW:-Rebuild100k}
MINIO=${FABRIK_MINIO_BIN:-$HOME/.cache/fabrik-node/bin/minio}
S3_USER=fabrik-bench
S3_PASS=fabrik-bench-secret

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fabrik-bench.XXXXXX")
SUMMARY=$WORK/summary.txt
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$SUMMARY"; }
section() { say ""; say "== $* =="; }

# --- build ------------------------------------------------------------------
echo "[bench] building fabrik-node and the load tools"
$GO build -o bin/fabrik-node ./cmd/fabrik-node
BIN=$PWD/bin/fabrik-node
$GO build -o "$WORK/loadgen" ./bench/loadgen
$GO build -o "$WORK/misspath" ./bench/misspath
$GO build -o "$WORK/limitserver" ./bench/limitserver
LOADGEN=$WORK/loadgen

say "fabrik-node bench $(git describe --always --dirty 2>/dev/null || echo dev) on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), fsync=$FSYNC"

# --- Go benchmarks ----------------------------------------------------------
if [ "${BENCH_GO:-1}" != 0 ]; then
  section "Go benchmarks (-benchtime $BENCHTIME)"
  FABRIK_MINIO_BIN=$MINIO $GO test -run '^$' -bench . -skip "$SLOW_BENCH" -benchtime "$BENCHTIME" -benchmem -timeout 10m "${GO_PKGS[@]}" \
    | tee "$WORK/gobench.txt" | grep -E '^(Benchmark|ok|FAIL|---)' | tee -a "$SUMMARY"
  $GO test -run '^$' -bench "$SLOW_BENCH" -benchtime 1x -benchmem -timeout 10m "${GO_PKGS[@]}" \
    | tee -a "$WORK/gobench.txt" | grep -E '^(Benchmark|FAIL|---)' | tee -a "$SUMMARY"
fi
[ "${BENCH_LOAD:-1}" = 0 ] && { cat "$SUMMARY" > "${BENCH_OUT:-/dev/null}"; exit 0; }

# --- nodes ------------------------------------------------------------------
mapfile -t PORTS < <("$LOADGEN" -op ports -n 27)
port() { echo "${PORTS[$1]}"; }

# write_config FILE DIR HTTP_PORT HEALTH_PORT API_PORT FABRIK_PORT [UPSTREAM_TOML]
write_config() {
  cat >"$1" <<EOF
[cache]
dir = "$2"
max_size = "60GB"
max_artifact_size = "1GB"
fsync = $FSYNC
[build_tools]
enabled = ["gradle"]
http_bind = "127.0.0.1:$3"
grpc_bind = "127.0.0.1:$(port 19)"
[fabrik]
bind = "127.0.0.1:$6"
[observability]
log_level = "warn"
log_format = "text"
health_bind = "127.0.0.1:$4"
api_bind = "127.0.0.1:$5"
[runtime]
graceful_shutdown_timeout = "5s"
${7:-}
EOF
}

# start_node NAME ROLE CONFIG HEALTH_PORT: runs the node, waits for /health
# and sets the variable pid_NAME.
start_node() {
  local name=$1 role=$2 cfg=$3 health=$4
  "$BIN" --role "$role" --config "$cfg" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  printf -v "pid_$name" '%s' "$!"
  for _ in $(seq 1 100); do
    if "$BIN" health --url "http://127.0.0.1:$health/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  echo "[bench] $name did not become healthy; its log:" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}

# metric URL NAME: the value of one Prometheus sample (0 when absent).
metric() {
  curl -fsS "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}

# wait_metric URL NAME MIN: until the sample reaches MIN (120 s at most).
wait_metric() {
  for _ in $(seq 1 1200); do
    [ "$(metric "$1" "$2")" -ge "$3" ] && return 0
    sleep 0.1
  done
  echo "[bench] timed out waiting for $2 >= $3 on $1" >&2
  exit 1
}

# --- 1. one edge, Gradle adapter, against the in-memory limit ----------------
# Every workload runs against the limit server (bench/limitserver: bodies in
# a map, stdlib only), the node, and bazel-remote when BENCH_BAZEL_REMOTE
# names a built binary, one after the other in this run; each node figure is
# then printed as a ratio to the limit's.
if [ "${BENCH_SOLO:-1}" != 0 ]; then
section "Gradle adapter on one edge vs the in-memory limit, 16 clients (loadgen)"
write_config "$WORK/solo.toml" "$WORK/solo" "$(port 0)" "$(port 1)" "$(port 2)" "$(port 3)"
start_node solo edge "$WORK/solo.toml" "$(port 1)"
SOLO=http://127.0.0.1:$(port 0)
"$WORK/limitserver" -addr "127.0.0.1:$(port 20)" >"$WORK/limit.log" 2>&1 &
PIDS+=($!)
pid_limit=$!
LIMIT=http://127.0.0.1:$(port 20)
TARGETS=("limit|$LIMIT|/cache/||limit=$pid_limit" "node|$SOLO|/cache/||edge=$pid_solo")
if [ -n "${BENCH_BAZEL_REMOTE:-}" ]; then
  "$BENCH_BAZEL_REMOTE" --dir "$WORK/bazel-remote" --max_size 20 --http_address "127.0.0.1:$(port 21)" \
    --grpc_address "127.0.0.1:$(port 22)" --disable_http_ac_validation >"$WORK/bazel-remote.log" 2>&1 &
  PIDS+=($!)
  pid_br=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$(port 21)/status" >/dev/null 2>&1 && break; sleep 0.1; done
  TARGETS+=("bazel-remote|http://127.0.0.1:$(port 21)|/ac/|-key64|bazel-remote=$pid_br")
fi
# BENCH_HOT_COMPARE=1 adds a second edge with the hot tier off
# (cache.hot_size = 0) to the same run.
if [ "${BENCH_HOT_COMPARE:-0}" = 1 ]; then
  write_config "$WORK/cold.toml" "$WORK/cold" "$(port 23)" "$(port 24)" "$(port 25)" "$(port 26)"
  FABRIK_CONFIG_CACHE_HOT_SIZE=0 start_node cold edge "$WORK/cold.toml" "$(port 24)"
  TARGETS+=("node-hot-off|http://127.0.0.1:$(port 23)|/cache/||edge=$pid_cold")
fi
for _ in $(seq 1 100); do curl -s -o /dev/null "$LIMIT/" && break; sleep 0.1; done
# field LINE NAME: the value of NAME=... in a loadgen line.
field() { grep -o " $2=[0-9.]*" <<<"$1" | head -1 | cut -d= -f2; }
# ratio OP LINE LIMIT_LINE: one line of ratios to the limit server.
ratio() {
  say "$(awk -v op="$1" -v a="$(field "$2" ops/s)" -v b="$(field "$3" ops/s)" -v p="$(field "$2" p99)" -v q="$(field "$3" p99)" \
    -v c="$(field "$2" cpu-us/op)" -v d="$(field "$3" cpu-us/op)" \
    'BEGIN { printf "  -> %-22s %.2fx the limit (ops/s), p99 %+.2f ms over it, server CPU/op %.2fx the limit'"'"'s (%s vs %s us)\n", op, (b > 0 ? a / b : 0), p - q, (d > 0 ? c / d : 0), c, d }')"
}
# size  puts  gets (BENCH_SIZES picks some, e.g. BENCH_SIZES=4KiB)
for spec in "4KiB 1000 20000" "1MiB 512 1024" "64MiB 32 64"; do
  read -r size puts gets <<<"$spec"
  [[ " ${BENCH_SIZES:-4KiB 1MiB 64MiB} " == *" $size "* ]] || continue
  run=$RANDOM$RANDOM
  declare -A line=()
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r tname url path extra pids <<<"$t"
    line[$tname.put]=$("$LOADGEN" -url "$url" -path "$path" $extra -op put -size "$size" -clients 16 -n "$puts" \
      -run "$run" -duration 90s -pids "$pids" -name "$tname put $size c=16")
    say "${line[$tname.put]}"
  done
  # GETs in interleaved rounds (BENCH_ROUNDS, default 3): the machine's
  # load drifts, so each target's median round is compared.
  for r in $(seq 1 "${BENCH_ROUNDS:-3}"); do
    for t in "${TARGETS[@]}"; do
      IFS='|' read -r tname url path extra pids <<<"$t"
      l=$("$LOADGEN" -url "$url" -path "$path" $extra -op get -size "$size" -clients 16 -n "$gets" -keys "$puts" \
        -run "$run" -duration 90s -pids "$pids" -name "$tname get $size c=16 #$r")
      say "$l"
      line[$tname.get]+="$(head -1 <<<"$l")"$'\n'
    done
  done
  for t in "${TARGETS[@]}"; do
    tname=${t%%|*}
    # the median round by ops/s
    line[$tname.get]=$(grep . <<<"${line[$tname.get]}" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^ops\/s=/) { split($i, a, "="); print a[2], $0 } }' \
      | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }' | cut -d' ' -f2-)
    [ "$tname" = limit ] || say "  median: ${line[$tname.get]}"
  done
  say "  median: ${line[limit.get]}"
  for t in "${TARGETS[@]:1}"; do
    tname=${t%%|*}
    for op in put get; do ratio "$tname $op $size" "${line[$tname.$op]}" "${line[limit.$op]}"; done
  done
  unset line
done
"$LOADGEN" -url "$SOLO" -op get -size 4KiB -clients 16 -n 8000 -run 999 -expect 404 -name "get miss 4KiB c=16" \
  -pids "edge=$pid_solo" | tee -a "$SUMMARY"
kill "$pid_solo"; wait "$pid_solo" 2>/dev/null || true
kill "$pid_limit"; wait "$pid_limit" 2>/dev/null || true
[ -n "${pid_br:-}" ] && { kill "$pid_br"; wait "$pid_br" 2>/dev/null || true; }
[ -n "${pid_cold:-}" ] && { kill "$pid_cold"; wait "$pid_cold" 2>/dev/null || true; }
fi

# --- 2. layer 2: edge -> regional -> MinIO -----------------------------------
if [ "${BENCH_LAYER2:-1}" != 0 ]; then
if [ ! -x "$MINIO" ]; then
  echo "[bench] building MinIO once (scripts/install-minio.sh)"
  bash scripts/install-minio.sh
fi
S3=http://127.0.0.1:$(port 4)
MINIO_ROOT_USER=$S3_USER MINIO_ROOT_PASSWORD=$S3_PASS MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
  "$MINIO" server --quiet --address "127.0.0.1:$(port 4)" --console-address "127.0.0.1:$(port 5)" "$WORK/minio" \
  >"$WORK/minio.log" 2>&1 &
PIDS+=($!)
pid_minio=$!
for _ in $(seq 1 300); do
  curl -fsS "$S3/minio/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

s3_upstream="[[upstream]]
url = \"s3://bench/tenant-bench/\"
endpoint = \"$S3\"
region = \"us-east-1\"
access_key = \"$S3_USER\"
secret_key = \"$S3_PASS\"
timeout = \"30s\"
workers = 8"
regional_upstream="[[upstream]]
url = \"grpc://127.0.0.1:$(port 9)\"
timeout = \"30s\""
write_config "$WORK/regional.toml" "$WORK/regional" "$(port 6)" "$(port 7)" "$(port 8)" "$(port 9)" "$s3_upstream"
write_config "$WORK/edge-a.toml" "$WORK/edge-a" "$(port 10)" "$(port 11)" "$(port 12)" "$(port 13)" "$regional_upstream"
write_config "$WORK/edge-b.toml" "$WORK/edge-b" "$(port 14)" "$(port 15)" "$(port 16)" "$(port 17)" "$regional_upstream"

# The bucket must exist before the regional's first upload.
"$WORK/misspath" -s3-endpoint "$S3" -access-key "$S3_USER" -secret-key "$S3_PASS" -create-bucket \
  -sizes "" >/dev/null
start_node regional regional "$WORK/regional.toml" "$(port 7)"
start_node edge_a edge "$WORK/edge-a.toml" "$(port 11)"
start_node edge_b edge "$WORK/edge-b.toml" "$(port 15)"
EDGE_A=http://127.0.0.1:$(port 10)
EDGE_B=http://127.0.0.1:$(port 14)

section "Miss path edge -> regional -> S3 vs a direct S3 GET (misspath, sequential)"
"$WORK/misspath" -s3-endpoint "$S3" -access-key "$S3_USER" -secret-key "$S3_PASS" \
  -regional "127.0.0.1:$(port 9)" -edge "$EDGE_A" -sizes 4KiB,1MiB -n 50 | tee -a "$SUMMARY"

section "256 MiB through two layers"
run=$RANDOM$RANDOM
done_before=$(metric "http://127.0.0.1:$(port 12)" 'fabrik_upload_completed_total{upstream="upstream-0"}')
s3_before=$(metric "http://127.0.0.1:$(port 8)" 'fabrik_upload_completed_total{upstream="upstream-0"}')
for pid in "$pid_edge_a" "$pid_regional" "$pid_edge_b"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
"$LOADGEN" -url "$EDGE_A" -op put -size 256MiB -clients 1 -n 1 -run "$run" -name "PUT 256MiB to edge A" | tee -a "$SUMMARY"
start=$(date +%s.%N)
wait_metric "http://127.0.0.1:$(port 12)" 'fabrik_upload_completed_total{upstream="upstream-0"}' $((done_before + 1))
wait_metric "http://127.0.0.1:$(port 8)" 'fabrik_upload_completed_total{upstream="upstream-0"}' $((s3_before + 1))
say "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "write-through edge A -> regional -> S3 done %.2fs after the PUT answered\n", e - s }')"
"$LOADGEN" -url "$EDGE_B" -op get -size 256MiB -clients 1 -n 1 -run "$run" -name "GET 256MiB edge B (regional hit)" | tee -a "$SUMMARY"
"$WORK/misspath" -s3-endpoint "$S3" -access-key "$S3_USER" -secret-key "$S3_PASS" \
  -regional "127.0.0.1:$(port 9)" -edge "$EDGE_B" -sizes 256MiB -n 1 -warm 0 | tee -a "$SUMMARY"
"$LOADGEN" -op rss -pids "edge_a=$pid_edge_a,regional=$pid_regional,edge_b=$pid_edge_b" | tee -a "$SUMMARY"
fi

# --- 3. GOCACHEPROG: the go command's build cache on an edge ------------------
if [ "${BENCH_GOCACHE:-1}" != 0 ]; then
section "GOCACHEPROG: go build ./... of ${BENCH_GOMOD_PACKAGES:-60} generated packages (wall time)"
write_config "$WORK/gocache.toml" "$WORK/gocache-edge" "$(port 18)" "$(port 1)" "$(port 2)" "$(port 3)"
FABRIK_CONFIG_BUILD_TOOLS_ENABLED=gocache start_node gocache edge "$WORK/gocache.toml" "$(port 1)"
GOMOD=$WORK/gomod
$GO run ./bench/gomodgen -dir "$GOMOD" -packages "${BENCH_GOMOD_PACKAGES:-60}" >/dev/null
# go_build LABEL GOCACHE [HELPER_DIR]: times one `go build ./...` in the
# module; with HELPER_DIR, through `fabrik-node gocacheprog` and the edge.
go_build() {
  local label=$1 cache=$2 helper=${3:-} prog="" start
  [ -n "$helper" ] && prog="$BIN gocacheprog --url http://127.0.0.1:$(port 18) --dir $helper"
  start=$(date +%s.%N)
  (cd "$GOMOD" && GOCACHE=$cache GOCACHEPROG=$prog GOENV=off GOFLAGS= GOWORK=off GOTOOLCHAIN=local \
    GOPROXY=off CGO_ENABLED=0 $GO build ./... )
  say "$(awk -v s="$start" -v e="$(date +%s.%N)" -v l="$label" 'BEGIN { printf "%-52s %7.2f s\n", l, e - s }')"
}
go_build "cold (empty edge, empty helper dir, empty GOCACHE)" "$WORK/gc1" "$WORK/helper1"
wait_metric "http://127.0.0.1:$(port 2)" 'fabrik_cache_objects' 1
go_build "warm edge, empty helper dir, empty GOCACHE" "$WORK/gc2" "$WORK/helper2"
go_build "warm helper dir (local hits only)" "$WORK/gc3" "$WORK/helper2"
go_build "plain GOCACHE, cold (no GOCACHEPROG)" "$WORK/gc4"
go_build "plain GOCACHE, warm (no GOCACHEPROG)" "$WORK/gc4"
say "edge gocache hits: $(metric "http://127.0.0.1:$(port 2)" 'fabrik_cache_hits_by_build_system_total{build_system="gocache"}')"
kill "$pid_gocache"; wait "$pid_gocache" 2>/dev/null || true
fi

echo
echo "================ summary ================"
cat "$SUMMARY"
if [ -n "${BENCH_OUT:-}" ]; then cp "$SUMMARY" "$BENCH_OUT"; fi
