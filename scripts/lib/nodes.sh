# Shared by scripts/bench.sh and scripts/soak.sh (sourced, not run): the
# processes they start on 127.0.0.1, stopped on exit whatever happens, and
# their temp dir removed. The sourcing script sets TAG (its log prefix)
# and WORK (its temp dir), then calls on_exit_cleanup.

PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}

on_exit_cleanup() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# start_node NAME ROLE CONFIG HEALTH_PORT [BINARY]: runs a node (default
# $BIN), waits for its /health and sets the variable pid_NAME.
start_node() {
  local name=$1 role=$2 cfg=$3 health=$4 bin=${5:-$BIN}
  "$bin" --role "$role" --config "$cfg" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  printf -v "pid_$name" '%s' "$!"
  for _ in $(seq 1 100); do
    if "$bin" health --url "http://127.0.0.1:$health/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  echo "[$TAG] $name did not become healthy; its log:" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}
