#!/usr/bin/env bash
# The production stack without Docker: the OpenTelemetry Collector and Jaeger v2 built
# from their Go modules, run as local processes on 127.0.0.1 with the same config files
# docker-compose.yml mounts (collector-config/collector.yaml, collector-config/jaeger.yaml).
# FerretDB (a MongoDB wire-protocol server) is built the same way for the pymongo tests,
# which start it themselves; `start` does not run it.
#
#   scripts/stack.sh build [collector|jaeger|ferretdb ...]
#                             build all three, or the ones named (once; later runs reuse
#                             the cached binaries)
#   scripts/stack.sh start    start Jaeger, then the Collector, in the background
#   scripts/stack.sh stop     stop what `start` started
#   scripts/stack.sh status   what runs, and where
#   scripts/stack.sh paths    print OTELCOL_BIN=..., JAEGER_BIN=..., FERRETDB_BIN=...
#                             (tests read this)
#
# What is built:
#   tools/collector/builder-config.yaml   OCB manifest: the exact component modules the
#                                         collector configs use, all at one release
#   tools/jaeger/go.mod, go.sum           github.com/jaegertracing/jaeger's cmd/jaeger
#   tools/ferretdb/go.mod, go.sum, main.go  FerretDB v1 (github.com/FerretDB/FerretDB's
#                                         embeddable package, run by main.go)
# Everything goes to OTEL_DB_STACK_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/otel-db/
# stack), outside git, with Go's build and module caches there too. A binary is keyed on
# the hash of its manifest (and the Go version), so editing a pin rebuilds and nothing
# else does. Modules come from the Go module proxy (GOPROXY, Go's default).
set -Eeuo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${OTEL_DB_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/otel-db/stack}
COLLECTOR_MANIFEST=$REPO/tools/collector/builder-config.yaml
JAEGER_MODULE=$REPO/tools/jaeger
FERRETDB_MODULE=$REPO/tools/ferretdb

# One release for the builder and every module of the manifest (dist.version).
COLLECTOR_RELEASE=$(sed -n 's/^  version: *\([0-9.]*\) *$/\1/p' "$COLLECTOR_MANIFEST")
JAEGER_MODULE_VERSION=$(sed -n 's/^\tgithub.com\/jaegertracing\/jaeger \(v[0-9.]*\).*/\1/p' \
  "$JAEGER_MODULE/go.mod")
FERRETDB_MODULE_VERSION=$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*github.com\/FerretDB\/FerretDB \(v[0-9.]*\).*/\2/p' \
  "$FERRETDB_MODULE/go.mod")

export GOCACHE=$CACHE/go-build
export GOMODCACHE=$CACHE/go-mod
# 2 cores on CI: two compile jobs at a time, no more.
export GOFLAGS=${OTEL_DB_STACK_GOFLAGS:--p=2}
export GOTOOLCHAIN=local

# Local run: everything on 127.0.0.1. Jaeger's OTLP ports are moved off 4317/4318, which
# the Collector takes (the same ports an app under opentelemetry-instrument sends to).
: "${OTEL_DB_STACK_RUN:=$CACHE/run}"
: "${OTEL_DB_OTLP_GRPC_ENDPOINT:=127.0.0.1:4317}"
: "${OTEL_DB_OTLP_HTTP_ENDPOINT:=127.0.0.1:4318}"
: "${OTEL_DB_HEALTH_CHECK_ENDPOINT:=127.0.0.1:13133}"
: "${OTEL_DB_PROMETHEUS_ENDPOINT:=127.0.0.1:8889}"
: "${OTEL_DB_TELEMETRY_HOST:=127.0.0.1}"
: "${OTEL_DB_TELEMETRY_PORT:=8888}"
: "${OTEL_DB_QUEUE_DIRECTORY:=$OTEL_DB_STACK_RUN/queue}"
: "${JAEGER_OTLP_GRPC_ENDPOINT:=127.0.0.1:14317}"
: "${JAEGER_OTLP_HTTP_ENDPOINT:=127.0.0.1:14318}"
: "${JAEGER_QUERY_HTTP_ENDPOINT:=127.0.0.1:16686}"
: "${JAEGER_QUERY_GRPC_ENDPOINT:=127.0.0.1:16685}"
: "${JAEGER_HEALTH_CHECK_ENDPOINT:=127.0.0.1:13134}"
: "${JAEGER_TELEMETRY_HOST:=127.0.0.1}"
: "${JAEGER_TELEMETRY_PORT:=8887}"
: "${JAEGER_PROMETHEUS_URL:=http://127.0.0.1:9090}"
: "${JAEGER_OTLP_ENDPOINT:=$JAEGER_OTLP_GRPC_ENDPOINT}"
export OTEL_DB_OTLP_GRPC_ENDPOINT OTEL_DB_OTLP_HTTP_ENDPOINT OTEL_DB_HEALTH_CHECK_ENDPOINT \
  OTEL_DB_PROMETHEUS_ENDPOINT OTEL_DB_TELEMETRY_HOST OTEL_DB_TELEMETRY_PORT \
  OTEL_DB_QUEUE_DIRECTORY JAEGER_OTLP_GRPC_ENDPOINT JAEGER_OTLP_HTTP_ENDPOINT \
  JAEGER_QUERY_HTTP_ENDPOINT JAEGER_QUERY_GRPC_ENDPOINT JAEGER_HEALTH_CHECK_ENDPOINT \
  JAEGER_TELEMETRY_HOST JAEGER_TELEMETRY_PORT JAEGER_PROMETHEUS_URL JAEGER_OTLP_ENDPOINT

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

hash_of() { cat "$@" <(go env GOVERSION) | sha256sum | cut -c1-16; }

collector_bin() { echo "$CACHE/otelcol/$COLLECTOR_RELEASE-$(hash_of "$COLLECTOR_MANIFEST")/otelcol-otel-db"; }
jaeger_bin() {
  echo "$CACHE/jaeger/$JAEGER_MODULE_VERSION-$(hash_of "$JAEGER_MODULE/go.mod" "$JAEGER_MODULE/go.sum")/jaeger"
}
ferretdb_bin() {
  echo "$CACHE/ferretdb/$FERRETDB_MODULE_VERSION-$(hash_of "$FERRETDB_MODULE"/{go.mod,go.sum,main.go})/ferretdb"
}

record_time() { # name seconds
  printf '%s %s %ss (GOFLAGS=%s, %s cores)\n' "$(date -u +%FT%TZ)" "$1" "$2" "$GOFLAGS" \
    "$(nproc)" >>"$CACHE/build-times.log"
  log "built $1 in $2 s (log of build times: $CACHE/build-times.log)"
}

# build_binary name version bin step...: run `step... OUTDIR` to put the binary into a
# fresh OUTDIR, then move OUTDIR into place as bin's folder; a cached bin skips it all.
build_binary() {
  local name=$1 version=$2 bin=$3 dir started
  shift 3
  if [[ -x $bin ]]; then log "$name: cached $bin"; return; fi
  dir=$(dirname "$bin")
  started=$(date +%s)
  log "$name: building $version into $dir (first build: minutes)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  "$@" "$dir.tmp" || die "$name build failed"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  record_time "$name-$version" $(($(date +%s) - started))
}

collector_step() { # outdir
  mkdir -p "$CACHE/tools"
  GOBIN=$CACHE/tools/builder-$COLLECTOR_RELEASE \
    go install "go.opentelemetry.io/collector/cmd/builder@v$COLLECTOR_RELEASE" || return
  # the manifest with its output folder in the cache (the builder's dist::output_path)
  sed "s|^dist:\$|dist:\n  output_path: $1/src|" "$COLLECTOR_MANIFEST" >"$1/manifest.yaml"
  "$CACHE/tools/builder-$COLLECTOR_RELEASE/builder" --config "$1/manifest.yaml" \
    >"$1/build.log" 2>&1 || { tail -40 "$1/build.log" >&2; return 1; }
  mv "$1/src/otelcol-otel-db" "$1/otelcol-otel-db"
}

go_module_step() { # wrapper-module package binary-name outdir
  (cd "$1" && go build -mod=readonly -trimpath -ldflags='-s -w' -o "$4/$3" "$2")
}

build_one() {
  case $1 in
    collector)
      build_binary otelcol-otel-db "$COLLECTOR_RELEASE" "$(collector_bin)" collector_step ;;
    jaeger)
      build_binary jaeger "$JAEGER_MODULE_VERSION" "$(jaeger_bin)" \
        go_module_step "$JAEGER_MODULE" github.com/jaegertracing/jaeger/cmd/jaeger jaeger ;;
    ferretdb)
      build_binary ferretdb "$FERRETDB_MODULE_VERSION" "$(ferretdb_bin)" \
        go_module_step "$FERRETDB_MODULE" . ferretdb ;;
    *) die "unknown binary '$1' (collector, jaeger, ferretdb)" ;;
  esac
}

wait_http() { # url seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

start_one() { # name binary config health-url
  local pidfile=$OTEL_DB_STACK_RUN/$1.pid
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "$1 already running (pid $(cat "$pidfile"))"
    return
  fi
  [[ -x $2 ]] || die "$1 is not built: run scripts/stack.sh build"
  "$2" --config "$3" >"$OTEL_DB_STACK_RUN/$1.log" 2>&1 &
  echo $! >"$pidfile"
  wait_http "$4" 60 || { tail -30 "$OTEL_DB_STACK_RUN/$1.log" >&2; die "$1 did not become healthy"; }
  log "$1 running (pid $!, log $OTEL_DB_STACK_RUN/$1.log)"
}

stop_one() {
  local pidfile=$OTEL_DB_STACK_RUN/$1.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "$1 stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}

case ${1:-} in
  build)
    shift
    (($#)) || set -- collector jaeger ferretdb
    for name in "$@"; do build_one "$name"; done
    ;;
  paths)
    echo "OTELCOL_BIN=$(collector_bin)"
    echo "JAEGER_BIN=$(jaeger_bin)"
    echo "FERRETDB_BIN=$(ferretdb_bin)"
    echo "COLLECTOR_RELEASE=$COLLECTOR_RELEASE"
    echo "JAEGER_MODULE_VERSION=$JAEGER_MODULE_VERSION"
    echo "FERRETDB_MODULE_VERSION=$FERRETDB_MODULE_VERSION"
    ;;
  start)
    mkdir -p "$OTEL_DB_STACK_RUN" "$OTEL_DB_QUEUE_DIRECTORY"
    start_one jaeger "$(jaeger_bin)" "$REPO/collector-config/jaeger.yaml" \
      "http://$JAEGER_HEALTH_CHECK_ENDPOINT/status"
    start_one otelcol "$(collector_bin)" "$REPO/collector-config/collector.yaml" \
      "http://$OTEL_DB_HEALTH_CHECK_ENDPOINT/"
    cat <<EOF
Send OTLP to      http://$OTEL_DB_OTLP_GRPC_ENDPOINT (gRPC) or http://$OTEL_DB_OTLP_HTTP_ENDPOINT (HTTP)
Jaeger UI / API   http://$JAEGER_QUERY_HTTP_ENDPOINT   (e.g. /api/services)
Span metrics      http://$OTEL_DB_PROMETHEUS_ENDPOINT/metrics
EOF
    ;;
  stop)
    stop_one otelcol
    stop_one jaeger
    ;;
  status)
    for name in jaeger otelcol; do
      pidfile=$OTEL_DB_STACK_RUN/$name.pid
      if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "$name: running (pid $(cat "$pidfile"), log $OTEL_DB_STACK_RUN/$name.log)"
      else
        echo "$name: stopped"
      fi
    done
    ;;
  *)
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
