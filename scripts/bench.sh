#!/usr/bin/env bash
# scripts/bench.sh — throughput/latency/RSS of lbd against HAProxy and nginx, measured
# in the same run on the same machine, all on loopback. See docs/benchmarks.md.
#
# Usage: scripts/bench.sh [--runs N] [--only LIST] [--no-build] [--keep] [-h]
#
# Environment (defaults in brackets):
#   BENCH_DURATION   measured wrk duration, seconds                     [10]
#   BENCH_WARMUP     warmup wrk duration before each measurement, s     [2]
#   BENCH_CONNS      wrk connections (-c)                               [64]
#   BENCH_THREADS    wrk threads (-t)                                   [2]
#   BENCH_RUNS       rounds; each row reports the median over rounds    [1]
#   BENCH_GOGC       GOGC for the lbd rows                              [400]
#   BENCH_LBD_DEFAULT_GOGC  1: add a row lbd-http with the default GOGC [1]
#   BENCH_HTTP_ENGINE  engine of lbd's http frontends: loop or fasthttp [lbd's default]
#   BENCH_ONLY       comma-separated rows to run                        [all]
#                    direct,haproxy-http,lbd-http,lbd-http-gogc-default,
#                    haproxy-tcp,lbd-tcp,nginx-proxy,haproxy-https,lbd-https
#                    (same as --only)
#   BENCH_IDLE_WAIT  seconds between "listening" and the idle RSS read  [1]
#   BENCH_KEEP       1: keep the temp dir (configs, logs, wrk output)   [0]
#   BENCH_STRICT     1: exit 3 when a target is missed                  [0]
#   LBD_BIN          lbd binary                                         [bin/lbd]
#   BENCH_NO_BUILD   1: do not run `make build`                         [0]
#
# Exit status: 0 all rows ran; 1 setup error; 2 an lbd row could not be measured
# (binary missing, build failed, did not start, errors under load); 3 a target was missed
# (only with BENCH_STRICT=1).
#
# Network: every socket is on 127.0.0.1. Every load loop is bounded by wrk -d and an
# outer `timeout`. Every process started here is stopped by PID on exit.
set -euo pipefail

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ---------------------------------------------------------------- parameters
DURATION="${BENCH_DURATION:-10}"; DURATION="${DURATION%s}"
WARMUP="${BENCH_WARMUP:-2}";      WARMUP="${WARMUP%s}"
CONNS="${BENCH_CONNS:-64}"
THREADS="${BENCH_THREADS:-2}"
RUNS="${BENCH_RUNS:-1}"
GOGC_LBD="${BENCH_GOGC:-400}"
LBD_DEFAULT_GOGC="${BENCH_LBD_DEFAULT_GOGC:-1}"
HTTP_ENGINE="${BENCH_HTTP_ENGINE:-}"
ONLY="${BENCH_ONLY:-}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-1}"
KEEP="${BENCH_KEEP:-0}"
STRICT="${BENCH_STRICT:-0}"
NO_BUILD="${BENCH_NO_BUILD:-0}"
LBD="${LBD_BIN:-bin/lbd}"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
  case "$1" in
    --runs) RUNS="${2:?--runs needs a number}"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --only) ONLY="${2:?--only needs a list}"; shift 2 ;;
    --only=*) ONLY="${1#*=}"; shift ;;
    --no-build) NO_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench: unknown argument: $1 (try --help)" >&2; exit 1 ;;
  esac
done

for v in DURATION WARMUP CONNS THREADS RUNS GOGC_LBD IDLE_WAIT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "bench: $v must be a whole number, not '${!v}'" >&2; exit 1; }
done
((RUNS >= 1 && DURATION >= 1 && CONNS >= 1 && THREADS >= 1)) || { echo "bench: runs, duration, conns, threads must be >= 1" >&2; exit 1; }

# Ports (all 127.0.0.1).
BACKEND_PORTS=(18081 18082 18083)
PORT_LBD_HTTP=18080
PORT_LBD_TCP=18090
PORT_LBD_ADMIN=19180
PORT_HAPROXY_HTTP=18100
PORT_HAPROXY_TCP=18110
PORT_NGINX_PROXY=18120
PORT_HAPROXY_HTTPS=18130   # the HTTPS rows (write_tls_configs)
PORT_LBD_HTTPS=18140

# Rows, in the order they run within a round. The lbd rows sit next to the HAProxy row
# they are compared with, so that drift of a noisy machine hits both alike.
ROWS=(direct haproxy-http lbd-http lbd-http-gogc-default haproxy-tcp lbd-tcp nginx-proxy haproxy-https lbd-https)
declare -A ROW_LABEL=(
  [direct]="direct (1 backend)"
  [haproxy-http]="haproxy http"
  [lbd-http]="lbd http (GOGC=$GOGC_LBD)"
  [lbd-http-gogc-default]="lbd http (GOGC default)"
  [haproxy-tcp]="haproxy tcp"
  [lbd-tcp]="lbd tcp (GOGC=$GOGC_LBD)"
  [nginx-proxy]="nginx proxy"
  [haproxy-https]="haproxy https"
  [lbd-https]="lbd https (GOGC=$GOGC_LBD)"
)

row_selected() {
  local r="$1"
  if [[ "$r" == lbd-http-gogc-default && "$LBD_DEFAULT_GOGC" != 1 ]]; then return 1; fi
  [[ -z "$ONLY" ]] && return 0
  [[ ",$ONLY," == *",$r,"* ]]
}
if [[ -n "$ONLY" ]]; then
  IFS=',' read -r -a _only <<<"$ONLY"
  for r in "${_only[@]}"; do
    [[ -n "${ROW_LABEL[$r]+x}" ]] || { echo "bench: unknown row '$r'; rows: ${ROWS[*]}" >&2; exit 1; }
  done
fi

log()  { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[bench %s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- process bookkeeping
PIDS=()          # every long-running process started by this script
TMP=""

proc_alive() {   # running and not a zombie
  local st
  [[ -r "/proc/$1/stat" ]] || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

descendants() {  # all descendants of PID, children first-level then deeper
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
    echo "$c"
    descendants "$c"
  done
}

forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

stop_pid() {     # TERM the process (and, if it lingers, KILL it and its descendants)
  local pid="$1" kids i
  [[ -n "$pid" ]] || return 0
  kids="$(descendants "$pid")"
  if proc_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do proc_alive "$pid" || break; sleep 0.1; done
    if proc_alive "$pid"; then
      warn "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60)) ignored SIGTERM for 5s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  for i in $kids; do
    if proc_alive "$i"; then kill -KILL "$i" 2>/dev/null || true; fi
  done
  # No `wait "$pid"` here: bash reaps its children by itself, and `wait` inside the
  # INT trap (which interrupted another `wait`) can block forever on a child that
  # died of the same SIGINT.
  forget_pid "$pid"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$? p
  set +e          # clean up as much as possible, whatever fails
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if [[ "$KEEP" == 1 ]]; then log "kept $TMP"; else rm -rf -- "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP="$(mktemp -d /tmp/lbd-bench.XXXXXX)"
chmod 755 "$TMP"   # nginx workers run as an unprivileged user when started as root
mkdir -p "$TMP/res" "$TMP/logs" "$TMP/wrk"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {    # wait_port PORT PID SECONDS
  local port="$1" pid="$2" secs="$3" i
  for ((i = 0; i < secs * 10; i++)); do
    proc_alive "$pid" || return 1
    port_open "$port" && return 0
    sleep 0.1
  done
  return 1
}

http_check() {   # one HTTP/1.1 GET through PORT; succeeds on "200" with body "ok"
  local out
  if [[ "$SUT_SCHEME" == https ]]; then   # the HTTPS rows: the same check through curl
    out="$(timeout 5 curl -sk --http1.1 -i "https://127.0.0.1:$1/" 2>/dev/null || true)"
    [[ "$out" =~ ^HTTP/1\.[01]\ 200 && "$out" == *ok* ]] && return 0
    warn "sanity GET on :$1 answered: $(printf '%s' "$out" | head -c 200 | tr '\r\n' '  ')"
    return 1
  fi
  # shellcheck disable=SC2016  # $1 is expanded by the inner bash
  out="$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" >&3
        cat <&3' _ "$1" 2>/dev/null || true)"
  [[ "$out" =~ ^HTTP/1\.[01]\ 200 && "$out" == *ok* ]] && return 0
  warn "sanity GET on :$1 answered: $(printf '%s' "$out" | head -c 200 | tr '\r\n' '  ')"
  return 1
}

rss_kib() {      # rss_kib FIELD PID: sum of FIELD (VmRSS / VmHWM) over PID and descendants
  local field="$1" pid="$2" total=0 p v
  for p in "$pid" $(descendants "$pid"); do
    v="$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)"
    [[ -n "$v" ]] && total=$((total + v))
  done
  echo "$total"
}

# ---------------------------------------------------------------- install
ensure_packages() {
  local missing=() pkg bin
  declare -A bin_of=([wrk]=wrk [haproxy]=haproxy [nginx]=nginx)
  for pkg in wrk haproxy nginx; do
    bin="${bin_of[$pkg]}"
    command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  ((EUID == 0)) || die "missing ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$TMP/logs/apt.log" 2>&1 \
    || { tail -20 "$TMP/logs/apt.log" >&2; die "apt-get install failed"; }
  # The packages may have started their system service; stop and disable only those we
  # just installed, never a service that was there before.
  for pkg in "${missing[@]}"; do
    [[ "$pkg" == wrk ]] && continue
    stop_package_service "$pkg"
  done
}

stop_package_service() {
  local svc="$1" pidfile pid comm
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable "$svc" >/dev/null 2>&1 || true
    if systemctl is-active --quiet "$svc" 2>/dev/null; then
      log "stopping the $svc service the package started"
      systemctl stop "$svc" >/dev/null 2>&1 || true
    fi
  fi
  for pidfile in "/run/$svc.pid" "/var/run/$svc.pid"; do
    [[ -r "$pidfile" ]] || continue
    pid="$(tr -dc '0-9' <"$pidfile")"
    if [[ -z "$pid" ]] || ! proc_alive "$pid"; then continue; fi
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
    if [[ "$comm" == "$svc"* ]]; then
      log "stopping $svc (pid $pid from $pidfile) that the package started"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
}

# ---------------------------------------------------------------- configs
# write_tls_configs: a self-signed certificate, and the HAProxy and lbd configs of the
# HTTPS rows (the http configs with TLS on the frontend).
write_tls_configs() {
  mkdir -p "$TMP/tls" "$TMP/lbd-https-state"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
    -addext subjectAltName=DNS:bench,IP:127.0.0.1 -keyout "$TMP/tls/bench.key" -out "$TMP/tls/bench.crt" 2>/dev/null \
    || die "openssl could not make the benchmark certificate"
  cat "$TMP/tls/bench.crt" "$TMP/tls/bench.key" >"$TMP/tls/bench.pem"
  sed -e "s|bind 127.0.0.1:$PORT_HAPROXY_HTTP|bind 127.0.0.1:$PORT_HAPROXY_HTTPS ssl crt $TMP/tls/bench.pem alpn http/1.1|" \
    "$TMP/haproxy-http.cfg" >"$TMP/haproxy-https.cfg"
  sed -e "s|$TMP/lbd-state|$TMP/lbd-https-state|; s|socket: $TMP/lbd.sock|socket: $TMP/lbd-https.sock|" \
    -e "s|listen: 127.0.0.1:$PORT_LBD_ADMIN|listen: \"\"|" \
    -e "s|bind: 127.0.0.1:$PORT_LBD_HTTP|bind: 127.0.0.1:$PORT_LBD_HTTPS\n    tls: {certificates: [{cert_file: $TMP/tls/bench.crt, key_file: $TMP/tls/bench.key}]}|" \
    -e "/^  - name: l4/,/^    backend: app/d" "$TMP/lbd.yaml" >"$TMP/lbd-https.yaml"
}

write_configs() {
  local i port
  for i in "${!BACKEND_PORTS[@]}"; do
    port="${BACKEND_PORTS[$i]}"
    mkdir -p "$TMP/be$i"
    cat >"$TMP/be$i/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TMP/be$i/nginx.pid;
error_log $TMP/logs/backend$i.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / { return 200 "ok\n"; }
    }
}
EOF
  done

  mkdir -p "$TMP/nginx-proxy"
  cat >"$TMP/nginx-proxy/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $TMP/nginx-proxy/nginx.pid;
error_log $TMP/logs/nginx-proxy.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream app {
        server 127.0.0.1:${BACKEND_PORTS[0]};
        server 127.0.0.1:${BACKEND_PORTS[1]};
        server 127.0.0.1:${BACKEND_PORTS[2]};
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$PORT_NGINX_PROXY backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

  local mode
  for mode in http tcp; do
    local port extra
    if [[ $mode == http ]]; then
      port=$PORT_HAPROXY_HTTP
      extra=$'    option http-keep-alive\n    http-reuse always'
    else
      port=$PORT_HAPROXY_TCP
      extra=""
    fi
    cat >"$TMP/haproxy-$mode.cfg" <<EOF
global
    nbthread 2
    maxconn 4096

defaults
    mode $mode
    timeout connect 5s
    timeout client 60s
    timeout server 60s
$extra

frontend fe
    bind 127.0.0.1:$port
    default_backend app

backend app
    balance roundrobin
    server s1 127.0.0.1:${BACKEND_PORTS[0]}
    server s2 127.0.0.1:${BACKEND_PORTS[1]}
    server s3 127.0.0.1:${BACKEND_PORTS[2]}
EOF
  done

  mkdir -p "$TMP/lbd-state"
  cat >"$TMP/lbd.yaml" <<EOF
node:
  name: bench
  state_dir: $TMP/lbd-state
  admin:
    socket: $TMP/lbd.sock
    listen: 127.0.0.1:$PORT_LBD_ADMIN
frontends:
  - name: web
    mode: http
    bind: 127.0.0.1:$PORT_LBD_HTTP
    backend: app${HTTP_ENGINE:+
    engine: $HTTP_ENGINE}
  - name: l4
    mode: tcp
    bind: 127.0.0.1:$PORT_LBD_TCP
    backend: app
backends:
  - name: app
    balance: roundrobin
    servers:
      - {name: s1, address: 127.0.0.1:${BACKEND_PORTS[0]}}
      - {name: s2, address: 127.0.0.1:${BACKEND_PORTS[1]}}
      - {name: s3, address: 127.0.0.1:${BACKEND_PORTS[2]}}
EOF
  write_tls_configs
}

# ---------------------------------------------------------------- start / stop
# start_bg NAME CMD...: runs CMD in the background, sets STARTED_PID.
STARTED_PID=""
start_bg() {
  local name="$1"; shift
  "$@" >"$TMP/logs/$name.out" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

start_backends() {
  local i port
  for i in "${!BACKEND_PORTS[@]}"; do
    port="${BACKEND_PORTS[$i]}"
    port_open "$port" && die "port $port is already in use"
    start_bg "backend$i" nginx -p "$TMP/be$i" -c "$TMP/be$i/nginx.conf" -e "$TMP/logs/backend$i.err"
    wait_port "$port" "$STARTED_PID" 10 || { cat "$TMP/logs/backend$i".* >&2 || true; die "backend nginx on :$port did not start"; }
    http_check "$port" || die "backend nginx on :$port does not answer 200 ok"
  done
  log "backends: nginx (worker_processes 1) on 127.0.0.1:${BACKEND_PORTS[*]}"
}

# sut_start ROW: starts the system under test for ROW (or nothing for "direct").
# Sets SUT_PID ("" for direct), SUT_PORT.
SUT_PID=""; SUT_PORT=""; SUT_SCHEME=http
sut_start() {
  local row="$1" ports=()
  SUT_PID=""; SUT_SCHEME=http
  case "$row" in
    haproxy-https|lbd-https)   # same self-signed certificate, HTTP/1.1 keep-alive over TLS
      SUT_SCHEME=https
      if [[ $row == haproxy-https ]]; then
        SUT_PORT=$PORT_HAPROXY_HTTPS; set -- haproxy -db -f "$TMP/haproxy-https.cfg"
      else
        [[ "$LBD_OK" == 1 ]] || return 1
        SUT_PORT=$PORT_LBD_HTTPS; set -- env GOGC="$GOGC_LBD" "$LBD" run --config "$TMP/lbd-https.yaml"
      fi
      ports=("$SUT_PORT")
      port_open "$SUT_PORT" && { warn "port $SUT_PORT already in use"; return 1; }
      start_bg "$row" "$@" ;;
    direct)
      SUT_PORT=${BACKEND_PORTS[0]}; return 0 ;;
    haproxy-http)
      SUT_PORT=$PORT_HAPROXY_HTTP; ports=("$SUT_PORT")
      port_open "$SUT_PORT" && { warn "port $SUT_PORT already in use"; return 1; }
      start_bg "$row" haproxy -db -f "$TMP/haproxy-http.cfg" ;;
    haproxy-tcp)
      SUT_PORT=$PORT_HAPROXY_TCP; ports=("$SUT_PORT")
      port_open "$SUT_PORT" && { warn "port $SUT_PORT already in use"; return 1; }
      start_bg "$row" haproxy -db -f "$TMP/haproxy-tcp.cfg" ;;
    nginx-proxy)
      SUT_PORT=$PORT_NGINX_PROXY; ports=("$SUT_PORT")
      port_open "$SUT_PORT" && { warn "port $SUT_PORT already in use"; return 1; }
      start_bg "$row" nginx -p "$TMP/nginx-proxy" -c "$TMP/nginx-proxy/nginx.conf" -e "$TMP/logs/nginx-proxy.err" ;;
    lbd-http|lbd-http-gogc-default|lbd-tcp)
      [[ "$LBD_OK" == 1 ]] || return 1
      if [[ $row == lbd-tcp ]]; then SUT_PORT=$PORT_LBD_TCP; else SUT_PORT=$PORT_LBD_HTTP; fi
      ports=("$PORT_LBD_HTTP" "$PORT_LBD_TCP")
      local p
      for p in "${ports[@]}"; do
        port_open "$p" && { warn "port $p already in use"; return 1; }
      done
      rm -f "$TMP/lbd.sock"
      if [[ $row == lbd-http-gogc-default ]]; then
        start_bg "$row" env -u GOGC "$LBD" run --config "$TMP/lbd.yaml"
      else
        start_bg "$row" env GOGC="$GOGC_LBD" "$LBD" run --config "$TMP/lbd.yaml"
      fi ;;
    *) die "unknown row $row" ;;
  esac
  SUT_PID="$STARTED_PID"
  local p
  for p in "${ports[@]}"; do
    if ! wait_port "$p" "$SUT_PID" 15; then
      warn "$row did not listen on 127.0.0.1:$p; its output:"
      tail -20 "$TMP/logs/$row.out" >&2 || true
      stop_pid "$SUT_PID"; SUT_PID=""
      return 1
    fi
  done
  return 0
}

# ---------------------------------------------------------------- wrk
# run_wrk SECONDS PORT OUTFILE
run_wrk() {
  local secs="$1" port="$2" out="$3" pid
  timeout --kill-after=5 $((secs + 20)) \
    wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s --latency "$SUT_SCHEME://127.0.0.1:$port/" \
    >"$out" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  local rc=0
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# parse_wrk FILE -> "rps p50_ms p99_ms errors"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return (v + 0) / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/)  return (v + 0) * 60000
      if (v ~ /s$/)  return (v + 0) * 1000
      return v + 0
    }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    END {
      if (rps == "") exit 1
      printf "%.2f %.3f %.3f %d\n", rps, p50, p99, err
    }' "$1"
}

# ---------------------------------------------------------------- one measurement
record() { echo "$3" >>"$TMP/res/$1.$2"; }   # record ROW METRIC VALUE
ROW_FAIL=()   # "row: reason"

measure_row() {   # measure_row ROW ROUND
  local row="$1" round="$2" idle=0 peak=0 parsed
  local wout="$TMP/wrk/$row.$round.txt"
  if ! sut_start "$row"; then
    ROW_FAIL+=("$row: did not start (round $round)")
    return 1
  fi
  if ! http_check "$SUT_PORT"; then
    [[ -n "$SUT_PID" ]] && stop_pid "$SUT_PID"
    ROW_FAIL+=("$row: the sanity GET did not get 200 ok")
    return 1
  fi
  if [[ -n "$SUT_PID" ]]; then
    sleep "$IDLE_WAIT"
    idle="$(rss_kib VmRSS "$SUT_PID")"
  fi
  log "$row (round $round/$RUNS): warmup ${WARMUP}s, then wrk -t$THREADS -c$CONNS -d${DURATION}s on :$SUT_PORT"
  if ((WARMUP > 0)); then run_wrk "$WARMUP" "$SUT_PORT" "$wout.warmup" || true; fi
  run_wrk "$DURATION" "$SUT_PORT" "$wout" || true
  if [[ -n "$SUT_PID" ]]; then
    if ! proc_alive "$SUT_PID"; then
      ROW_FAIL+=("$row: the process died during the load")
      tail -20 "$TMP/logs/$row.out" >&2 || true
      stop_pid "$SUT_PID"
      return 1
    fi
    peak="$(rss_kib VmHWM "$SUT_PID")"
    stop_pid "$SUT_PID"; SUT_PID=""
  fi
  if ! parsed="$(parse_wrk "$wout")"; then
    ROW_FAIL+=("$row: no wrk result")
    sed 's/^/    /' "$wout" >&2 || true
    return 1
  fi
  local rps p50 p99 err
  read -r rps p50 p99 err <<<"$parsed"
  record "$row" rps "$rps"
  record "$row" p50 "$p50"
  record "$row" p99 "$p99"
  record "$row" err "$err"
  record "$row" idle "$idle"
  record "$row" peak "$peak"
  log "$row: $rps req/s, p50 ${p50}ms, p99 ${p99}ms, errors $err, idle RSS ${idle}KiB, peak RSS ${peak}KiB"
  if ((err > 0)); then warn "$row: $err errors (non-2xx or socket errors) during the measurement"; fi
}

median() {   # median ROW METRIC -> value, or empty
  local f="$TMP/res/$1.$2"
  [[ -s "$f" ]] || return 0
  sort -g "$f" | awk '{v[NR] = $1} END {
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- main
ensure_packages
for b in wrk haproxy nginx; do
  command -v "$b" >/dev/null || die "$b is needed"
done

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}'; then
  warn "load average is $LOAD_START on $(nproc) CPUs: other work is running, the numbers will be noisy"
fi

write_configs
LBD_OK=0
LBD_WHY=""
need_lbd=0
for r in lbd-http lbd-http-gogc-default lbd-tcp lbd-https; do row_selected "$r" && need_lbd=1; done
if ((need_lbd)); then
  if [[ "$NO_BUILD" != 1 ]]; then
    log "make build"
    if ! make build >"$TMP/logs/build.log" 2>&1; then
      tail -30 "$TMP/logs/build.log" >&2 || true
      warn "make build failed"
      LBD_WHY="make build failed"
    fi
  fi
  if [[ -x "$LBD" ]]; then
    if ! timeout 20 "$LBD" validate --config "$TMP/lbd.yaml" >"$TMP/logs/validate.log" 2>&1; then
      warn "$LBD validate --config refused the bench config (trying to run it anyway):"
      sed 's/^/    /' "$TMP/logs/validate.log" >&2 || true
    fi
    LBD_OK=1
  else
    LBD_WHY="${LBD_WHY:+$LBD_WHY; }$LBD not found"
    warn "$LBD not available: the lbd rows are skipped"
  fi
fi

start_backends

for ((round = 1; round <= RUNS; round++)); do
  for row in "${ROWS[@]}"; do
    row_selected "$row" || continue
    if [[ $row == lbd-* && "$LBD_OK" != 1 ]]; then continue; fi
    if ! measure_row "$row" "$round"; then
      warn "$row: not measured in round $round"
      [[ -n "$SUT_PID" ]] && { stop_pid "$SUT_PID"; SUT_PID=""; }
    fi
  done
done

# ---------------------------------------------------------------- report
mib() { [[ -n "$1" && "$1" != 0 ]] && awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}' || echo "-"; }
ratio() { [[ -n "$1" && -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}' || echo "n/a"; }

kernel="$(uname -sr)"
cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
hap_v="$(haproxy -v 2>&1 | head -1 || true)"
ngx_v="$(nginx -v 2>&1 | head -1 || true)"
wrk_v="$(wrk -v 2>&1 | head -1 || true)"
go_v="$(go version 2>/dev/null || echo "go: not found")"
lbd_v="not available"
if [[ "$LBD_OK" == 1 ]]; then
  lbd_v="$(timeout 5 "$LBD" --version 2>/dev/null | head -1 || true)"
  lbd_v="${lbd_v:-$LBD} ($LBD built $(date -r "$LBD" '+%F %T' 2>/dev/null || echo "?"), tree $(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo "without commits"))"
fi

echo
echo "## lbd benchmark — $(date -u '+%F %H:%M UTC')"
echo
echo "- machine: $(nproc) CPUs${cpu:+ ($cpu)}, $kernel; load average at start $LOAD_START"
echo "- $hap_v"
echo "- $ngx_v"
echo "- $wrk_v"
echo "- $go_v"
echo "- lbd: $lbd_v"
echo "- load: wrk -t$THREADS -c$CONNS -d${DURATION}s --latency after ${WARMUP}s warmup; $RUNS round(s), median shown"
echo "- backends: 3 × nginx (worker_processes 1, return 200 \"ok\\n\") on 127.0.0.1:${BACKEND_PORTS[0]}-${BACKEND_PORTS[2]}; everything shares the same $(nproc) CPUs with wrk"
echo
printf '| %-26s | %13s | %8s | %8s | %6s | %12s | %12s |\n' "target" "req/s" "p50 ms" "p99 ms" "errors" "idle RSS MiB" "peak RSS MiB"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..28})" "$(printf -- '-%.0s' {1..15})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})"
for row in "${ROWS[@]}"; do
  row_selected "$row" || continue
  rps="$(median "$row" rps)"
  if [[ -z "$rps" ]]; then
    what="not measured"
    [[ $row == lbd-* && "$LBD_OK" != 1 ]] && what="not available"
    printf '| %-26s | %13s | %8s | %8s | %6s | %12s | %12s |\n' "${ROW_LABEL[$row]}" "$what" "-" "-" "-" "-" "-"
    continue
  fi
  printf '| %-26s | %13.0f | %8.3f | %8.3f | %6s | %12s | %12s |\n' "${ROW_LABEL[$row]}" "$rps" \
    "$(median "$row" p50)" "$(median "$row" p99)" "$(median "$row" err)" \
    "$(mib "$(median "$row" idle)")" "$(mib "$(median "$row" peak)")"
done
echo
echo "RSS: VmRSS (idle, ${IDLE_WAIT}s after the port listens, before any load) and VmHWM (peak, read after the"
echo "load) from /proc/PID/status, summed over the proxy's process tree (nginx: master + workers)."

MISSED=0
check() {   # check LABEL VALUE OP LIMIT
  local label="$1" v="$2" op="$3" lim="$4" ok
  if [[ -z "$v" || "$v" == n/a ]]; then
    printf '  %-44s %8s   target %s %s   %s\n' "$label" "n/a" "$op" "$lim" "not measured"
    return
  fi
  ok="$(awk -v v="$v" -v l="$lim" -v op="$op" 'BEGIN {
    if (op == ">=") r = (v >= l); else if (op == "<=") r = (v <= l); else r = (v < l); print r ? "PASS" : "FAIL" }')"
  [[ $ok == PASS ]] || MISSED=1
  printf '  %-44s %8s   target %s %s   %s\n' "$label" "$v" "$op" "$lim" "$ok"
}

echo
echo "Ratios (same run, same machine):"
check "lbd-http / haproxy-http req/s"  "$(ratio "$(median lbd-http rps)" "$(median haproxy-http rps)")" ">=" 0.7
check "lbd-http / haproxy-http p99"    "$(ratio "$(median lbd-http p99)" "$(median haproxy-http p99)")" "<=" 1.5
check "lbd-tcp / haproxy-tcp req/s"    "$(ratio "$(median lbd-tcp rps)" "$(median haproxy-tcp rps)")" ">=" 0.8
check "lbd-tcp / haproxy-tcp p99"      "$(ratio "$(median lbd-tcp p99)" "$(median haproxy-tcp p99)")" "<=" 1.5
check "lbd-https / haproxy-https req/s" "$(ratio "$(median lbd-https rps)" "$(median haproxy-https rps)")" ">=" 0.7
lbd_idle="$(median lbd-http idle)"
check "lbd idle RSS MiB"               "$( [[ -n "$lbd_idle" ]] && mib "$lbd_idle" || echo n/a)" "<" 20
echo "  (informative)"
printf '  %-44s %8s\n' "lbd-http (GOGC default) / haproxy-http req/s" "$(ratio "$(median lbd-http-gogc-default rps)" "$(median haproxy-http rps)")"
printf '  %-44s %8s\n' "lbd-http / nginx-proxy req/s" "$(ratio "$(median lbd-http rps)" "$(median nginx-proxy rps)")"
printf '  %-44s %8s\n' "haproxy-http / direct req/s" "$(ratio "$(median haproxy-http rps)" "$(median direct rps)")"
printf '  %-44s %8s\n' "lbd idle RSS / haproxy-http idle RSS" "$(ratio "$lbd_idle" "$(median haproxy-http idle)")"

if ((${#ROW_FAIL[@]})); then
  echo
  echo "Problems:"
  printf '  %s\n' "${ROW_FAIL[@]}"
fi

rc=0
lbd_missing=0
for r in lbd-http lbd-http-gogc-default lbd-tcp; do
  row_selected "$r" || continue
  f="$TMP/res/$r.rps"
  if [[ ! -s "$f" ]] || (($(wc -l <"$f") < RUNS)); then lbd_missing=1; fi
  if [[ -s "$TMP/res/$r.err" ]] && awk '$1 > 0 {e = 1} END {exit !e}' "$TMP/res/$r.err"; then lbd_missing=1; fi
done
if ((lbd_missing)); then
  echo
  echo "lbd: not (fully) measured${LBD_WHY:+ — $LBD_WHY} (exit 2)"
  rc=2
elif [[ "$STRICT" == 1 && $MISSED == 1 ]]; then
  rc=3
fi
exit "$rc"
