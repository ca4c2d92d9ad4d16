#!/usr/bin/env bash
# Installs the real build tools the end-to-end tests drive, so that a fresh
# machine (CI) has everything the tests need and nothing is silently skipped.
# Idempotent and fast when everything is already there (a few seconds).
#
# Usage: scripts/install-tools.sh [gradle|bazel|node|nats|minio|ccache|rclone|s3clients|registry|chromium|shells|all|bench]...  (default: all)
#
# `bench` (the servers `make bench` compares against) is not part of `all`:
# the tests never need it. scripts/bench.sh installs it itself.
#
# Environment:
#   FABRIK_TOOLS_DIR  root of the tool cache (default $HOME/.cache/fabrik-node).
#                     Nx and Turborepo are installed into $FABRIK_TOOLS_DIR/npm
#                     from the pinned scripts/node-tools/package.json (+ lockfile);
#                     the apt install log goes to $FABRIK_TOOLS_DIR/install.log.
#   FABRIK_TOOLS_BIN  where scripts/install-minio.sh puts the minio binary
#                     (default $HOME/.cache/fabrik-node/bin).
#   MINIO_VERSION     passed through to scripts/install-minio.sh.
#
# Tools and where they end up:
#   gradle      apt package gradle (4.4.1 on Debian 12)            /usr/bin/gradle
#   bazel       apt package bazel-bootstrap (4.2.3)                 /usr/bin/bazel
#   nats        apt package nats-server                             /usr/sbin/nats-server
#   node        npm: nx + turbo + @actions/cache, exact versions           $FABRIK_TOOLS_DIR/npm/node_modules/.bin
#   chromium    apt package chromium (headless, for the dashboard) /usr/bin/chromium
#   minio       built from the Go module proxy by install-minio.sh  $FABRIK_TOOLS_BIN/minio
#   ccache      apt packages ccache (4.7.5, built with http-storage) and gcc  /usr/bin/ccache, /usr/bin/gcc
#   rclone      apt package rclone (1.60; the WebDAV client of the e2e tests) /usr/bin/rclone
#   s3clients   apt packages awscli (2.x) and s3cmd: the S3 API's clients  /usr/bin/aws, /usr/bin/s3cmd
#   registry    OCI clients for the BuildKit registry cache tests:
#               crane and oras (go install, pinned)                $FABRIK_TOOLS_BIN/{crane,oras}
#               skopeo (apt)                                        /usr/bin/skopeo
#   shells      apt packages tmux, zsh, fish (shell activation e2e)  /usr/bin/{tmux,zsh,fish}
#   bench       npm: turborepo-remote-cache (ducktors), exact version from
#               scripts/bench-tools/                                $FABRIK_TOOLS_DIR/bench-npm/node_modules/.bin
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_DIR="${FABRIK_TOOLS_DIR:-$HOME/.cache/fabrik-node}"
NPM_DIR="$TOOLS_DIR/npm"
LOG="$TOOLS_DIR/install.log"
mkdir -p "$TOOLS_DIR"

say() { echo "[fabrik] $*"; }
die() { echo "[fabrik] ERROR: $*" >&2; exit 1; }

# A root shell in CI has no sudo; a developer's non-root shell needs it.
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_UPDATED=0
apt_update_once() {
  [ "$APT_UPDATED" = 1 ] && return 0
  say "apt-get update (log: $LOG)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOG" 2>&1 || die "apt-get update failed, see $LOG"
  APT_UPDATED=1
}

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# apt_install PACKAGE BINARY: installs PACKAGE unless it is already installed
# and BINARY is on PATH. A fresh machine may have empty or stale package lists,
# so a failed install is retried once after apt-get update; a machine whose
# lists are fine never pays for the update.
apt_install() {
  local pkg="$1" bin="$2"
  if pkg_installed "$pkg" && command -v "$bin" >/dev/null 2>&1; then
    say "$pkg already installed: $(command -v "$bin")"
    return 0
  fi
  say "installing $pkg with apt (log: $LOG)"
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >>"$LOG" 2>&1; then
    apt_update_once
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >>"$LOG" 2>&1 ||
      { tail -n 30 "$LOG" >&2; die "apt-get install $pkg failed, see $LOG"; }
  fi
  command -v "$bin" >/dev/null 2>&1 || die "$pkg installed but $bin is not on PATH ($PATH)"
  say "$pkg installed: $(command -v "$bin")"
}

install_gradle() {
  apt_install gradle gradle
  # Gradle 4.4.1 needs Debian's JDK 17, not another JDK that may be first on
  # PATH; the e2e harness points JAVA_HOME here.
  if [ -d /usr/lib/jvm/default-java ]; then
    say "gradle JAVA_HOME: /usr/lib/jvm/default-java"
  else
    say "WARNING: /usr/lib/jvm/default-java missing; Gradle 4.4.1 uses whatever java is on PATH"
  fi
}

install_bazel() {
  apt_install bazel-bootstrap bazel
}

install_nats() {
  # Debian installs it in /usr/sbin, which a non-root PATH may lack.
  PATH="$PATH:/usr/sbin" apt_install nats-server nats-server
}

install_node() {
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20+ first"
  local src="$SCRIPT_DIR/node-tools"
  mkdir -p "$NPM_DIR"
  # Installed already when the cache holds exactly our pinned manifest and
  # lockfile and both binaries exist.
  if cmp -s "$src/package.json" "$NPM_DIR/package.json" &&
    cmp -s "$src/package-lock.json" "$NPM_DIR/package-lock.json.pinned" &&
    [ -x "$NPM_DIR/node_modules/.bin/nx" ] && [ -x "$NPM_DIR/node_modules/.bin/turbo" ] &&
    [ -f "$NPM_DIR/node_modules/@actions/cache/package.json" ]; then
    say "nx and turbo already installed in $NPM_DIR"
  else
    say "installing nx and turbo into $NPM_DIR (npm install, log: $LOG)"
    cp "$src/package.json" "$NPM_DIR/package.json"
    cp "$src/package-lock.json" "$NPM_DIR/package-lock.json"
    # npm install, not npm ci: npm 11 leaves other platforms' optional
    # binaries (@nx/nx-darwin-*, @turbo/windows-*) out of the lockfile and then
    # its own `npm ci` refuses that lockfile as out of sync. npm install still
    # takes every version from the lockfile.
    (cd "$NPM_DIR" && npm install --no-audit --no-fund >>"$LOG" 2>&1) ||
      { tail -n 30 "$LOG" >&2; die "npm install in $NPM_DIR failed, see $LOG"; }
    # npm install may rewrite the lockfile; keep our pinned copy to compare against.
    cp "$src/package-lock.json" "$NPM_DIR/package-lock.json.pinned"
  fi
  say "nx: $NPM_DIR/node_modules/.bin/nx ($(cd "$NPM_DIR" && node -p 'require("nx/package.json").version'))"
  say "turbo: $NPM_DIR/node_modules/.bin/turbo ($("$NPM_DIR/node_modules/.bin/turbo" --version 2>/dev/null))"
  # @actions/cache: the real GitHub Actions cache client, run against the
  # local test server (internal/ghatest) to prove that server faithful.
  say "@actions/cache: $(cd "$NPM_DIR" && node -p 'JSON.parse(require("fs").readFileSync("node_modules/@actions/cache/package.json")).version')"
}

# The Turborepo remote cache most self-hosters run, for `make bench` to
# measure the Turborepo API against (scripts/bench.sh). Pinned like the e2e
# clients; its own directory, so the tests' npm tree is not touched.
install_bench() {
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20+ first"
  local src="$SCRIPT_DIR/bench-tools" dir="$TOOLS_DIR/bench-npm"
  mkdir -p "$dir"
  if cmp -s "$src/package.json" "$dir/package.json" &&
    cmp -s "$src/package-lock.json" "$dir/package-lock.json.pinned" &&
    [ -x "$dir/node_modules/.bin/turborepo-remote-cache" ]; then
    say "turborepo-remote-cache already installed in $dir"
  else
    say "installing turborepo-remote-cache into $dir (npm install, log: $LOG)"
    cp "$src/package.json" "$dir/package.json"
    cp "$src/package-lock.json" "$dir/package-lock.json"
    (cd "$dir" && npm install --no-audit --no-fund >>"$LOG" 2>&1) ||
      { tail -n 30 "$LOG" >&2; die "npm install in $dir failed, see $LOG"; }
    cp "$src/package-lock.json" "$dir/package-lock.json.pinned"
  fi
  say "turborepo-remote-cache: $dir/node_modules/.bin/turborepo-remote-cache ($(cd "$dir" && node -p 'require("./node_modules/turborepo-remote-cache/package.json").version'))"
}

install_chromium() {
  # Headless Chromium loads the dashboard in e2e/dashboard_test.go.
  apt_install chromium chromium
}

# Debian's awscli is 2.x at /usr/bin/aws (a pip awscli 1.x may come first on
# PATH; the e2e tests call /usr/bin/aws).
install_s3clients() {
  apt_install awscli aws
  [ -x /usr/bin/aws ] || die "awscli installed but /usr/bin/aws is missing"
  apt_install s3cmd s3cmd
}

# Shell activation is tested in real interactive shells driven through tmux.
install_shells() {
  apt_install tmux tmux
  apt_install zsh zsh
  apt_install fish fish
}

# The P2P test runs nodes in network namespaces joined by veth (ip, tc);
# protoc regenerates proto/ (make proto).
install_netns() {
  apt_install iproute2 ip
}

install_protoc() {
  apt_install protobuf-compiler protoc
}

install_minio() {
  bash "$SCRIPT_DIR/install-minio.sh"
}

install_ccache() {
  apt_install gcc gcc
  apt_install ccache ccache
  # The e2e tests need ccache's HTTP remote storage, which Debian builds in.
  ccache --version | grep -q "http-storage" || die "ccache lacks the http-storage feature: $(ccache --version | head -n 2)"
}

install_rclone() {
  apt_install rclone rclone
}

# HAProxy load-balances three regionals in e2e/lb_test.go (/usr/sbin/haproxy).
install_haproxy() {
  apt_install haproxy haproxy
}

# Pinned registry clients; change the versions deliberately (the module
# proxy must serve them).
CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"
ORAS_VERSION="${ORAS_VERSION:-v1.3.6}"

# go_install_pinned NAME PACKAGE VERSION: go install into FABRIK_TOOLS_BIN
# unless the binary there was already built from that module version.
go_install_pinned() {
  local name="$1" pkg="$2" version="$3" bin_dir="${FABRIK_TOOLS_BIN:-$HOME/.cache/fabrik-node/bin}"
  mkdir -p "$bin_dir"
  if [ -x "$bin_dir/$name" ] && go version -m "$bin_dir/$name" 2>/dev/null | grep -q "[[:space:]]$version[[:space:]]"; then
    say "$name $version already installed: $bin_dir/$name"
    return 0
  fi
  say "installing $name $version into $bin_dir (go install, log: $LOG)"
  GOBIN="$bin_dir" GOFLAGS=-mod=mod go install "$pkg@$version" >>"$LOG" 2>&1 ||
    { tail -n 30 "$LOG" >&2; die "go install $pkg@$version failed, see $LOG"; }
  say "$name installed: $bin_dir/$name"
}

install_registry() {
  go_install_pinned crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION"
  go_install_pinned oras oras.land/oras/cmd/oras "$ORAS_VERSION"
  apt_install skopeo skopeo
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(all)
for t in "${targets[@]}"; do
  case "$t" in
  gradle) install_gradle ;;
  bazel) install_bazel ;;
  node | nx | turbo) install_node ;;
  nats) install_nats ;;
  minio) install_minio ;;
  ccache) install_ccache ;;
  rclone) install_rclone ;;
  haproxy) install_haproxy ;;
  s3clients | awscli | s3cmd) install_s3clients ;;
  registry | crane | oras | skopeo) install_registry ;;
  chromium) install_chromium ;;
  shells | tmux | zsh | fish) install_shells ;;
  netns | iproute2) install_netns ;;
  protoc) install_protoc ;;
  bench | turborepo-remote-cache) install_bench ;;
  all)
    # Building MinIO is minutes of CPU while apt and npm mostly wait on the
    # network: on a fresh machine, doing both at once saves minutes.
    install_minio > "$TOOLS_DIR/minio-build.log" 2>&1 &
    minio_pid=$!
    install_gradle
    install_bazel
    install_nats
    install_node
    install_ccache
    install_rclone
    install_haproxy
    install_s3clients
    install_registry
    install_chromium
    install_shells
    install_netns
    if ! wait "$minio_pid"; then
      cat "$TOOLS_DIR/minio-build.log" >&2
      die "building minio failed (log above)"
    fi
    cat "$TOOLS_DIR/minio-build.log"
    ;;
  *) die "unknown tool '$t' (want gradle, bazel, node, nats, minio, ccache, rclone, haproxy, s3clients, registry, chromium, shells, all or bench)" ;;
  esac
done
say "tools ready: ${targets[*]}"
