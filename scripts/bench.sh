#!/usr/bin/env bash
# scripts/bench.sh — the benchmark matrix: lbd beside HAProxy (and nginx where it
# applies), every cell measured in the same run on the same machine, all on loopback.
# See docs/benchmarks.md.
#
# Usage: scripts/bench.sh [--full] [--cells LIST] [--runs N] [--only LIST] [--no-build]
#                         [--keep] [--list] [-h]
#
# A cell is one shape of traffic, named PROTO-MODE-BODY-cCONNS-BACKENDS:
#   PROTO-MODE  http-ka, http-close (HTTP/1.1, keep-alive or a new connection per
#               request), https-ka, https-close (the same over TLS; wrk resumes its TLS
#               session on each new connection), tls-hs (TLS handshakes per second: ab,
#               a new connection and a full handshake per request), h2-m1, h2-m10
#               (HTTP/2 over TLS, h2load -m 1 / -m 10), tcp-ka, tcp-close (a tcp-mode
#               frontend, wrk's HTTP/1.1 through it)
#   BODY        100, 4k, 64k, 1m (response body: 100 B, 4 KiB, 64 KiB, 1 MiB)
#   CONNS       64, 512 (client connections)
#   BACKENDS    shared (one nginx worker serving three ports) or sep (three nginx
#               processes, one port each)
# e.g. http-ka-100-c64-shared. Each cell runs every proxy, fresh for each measurement,
# BENCH_RUNS times, the proxies interleaved (their order rotates from one rep to the next).
#
# Environment (defaults in brackets):
#   BENCH_FULL       1: the whole matrix (144 cells, hours); 0: the quick subset [0]
#   BENCH_CELLS      comma-separated cell names or shell patterns (h2-*, *-c512-*),
#                    matched against the whole matrix (same as --cells)   [the subset]
#   BENCH_DURATION   measured seconds per measurement                     [4]
#   BENCH_WARMUP     seconds of the same load before each measurement     [1]
#   BENCH_RUNS       reps per cell of lbd and HAProxy; medians are shown   [3]
#   BENCH_REF_RUNS   reps per cell of nginx and direct (references, not in the
#                    ratios); at most BENCH_RUNS                           [1]
#   BENCH_CONNS      replaces the connection counts of the chosen cells (e.g. 128)
#   BENCH_THREADS    wrk / h2load threads (-t)                             [2]
#   BENCH_TLS_CIPHER the TLS 1.3 suite forced on clients and servers [TLS_AES_128_GCM_SHA256]
#   BENCH_GOGC       GOGC for lbd                                   [unset: as shipped]
#   BENCH_LBD_DEFAULT_GOGC  1: with BENCH_GOGC set, also run lbd with the default GOGC [0]
#   BENCH_HTTP_ENGINE  engine of lbd's http frontends: loop or fasthttp  [lbd's default]
#   BENCH_ONLY       comma-separated proxies to run: haproxy, lbd, nginx, direct (wrk
#                    straight to one backend, http cells), lbd-gogc-default; or the rows
#                    of the old script (direct, haproxy-http, lbd-http,
#                    lbd-http-gogc-default, haproxy-tcp, lbd-tcp, nginx-proxy,
#                    haproxy-https, lbd-https), which also keep only the cells of their
#                    protocol (same as --only)                [haproxy,lbd,nginx]
#   BENCH_IDLE_WAIT  seconds between "listening" and the idle RSS read      [1]
#   BENCH_OUT        directory for the results (.tsv, .md)       [bench-results]
#   BENCH_KEEP       1: keep the temp dir (configs, logs, load output)      [0]
#   BENCH_STRICT     1: exit 3 when a target is missed                      [0]
#   LBD_BIN          lbd binary                                             [bin/lbd]
#   BENCH_NO_BUILD   1: do not run `make build`                             [0]
#
# Output: a Markdown table on stdout (one row per cell and proxy, lbd's row with its
# ratios to HAProxy), the worst lbd/HAProxy ratios over the matrix, and the same as
# BENCH_OUT/matrix-TIME.md, the medians as BENCH_OUT/matrix-TIME.tsv and every single
# measurement as BENCH_OUT/matrix-TIME-runs.tsv.
#
# Exit status: 0 every cell ran; 1 setup error; 2 an lbd measurement is missing or had
# errors (binary missing, build failed, did not start, errors under load); 3 a target was
# missed (only with BENCH_STRICT=1).
#
# Network: every socket is on 127.0.0.1. Every load loop is bounded by its duration and
# an outer `timeout`. Every process started here is stopped by PID on exit.
set -euo pipefail

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CMDLINE="scripts/bench.sh${*:+ $*}"

# ---------------------------------------------------------------- parameters
FULL="${BENCH_FULL:-0}"
CELLS_SEL="${BENCH_CELLS:-}"
DURATION="${BENCH_DURATION:-4}"; DURATION="${DURATION%s}"
WARMUP="${BENCH_WARMUP:-1}";     WARMUP="${WARMUP%s}"
RUNS="${BENCH_RUNS:-3}"
REF_RUNS="${BENCH_REF_RUNS:-1}"
CONNS_OVR="${BENCH_CONNS:-}"
THREADS="${BENCH_THREADS:-2}"
CIPHER="${BENCH_TLS_CIPHER:-TLS_AES_128_GCM_SHA256}"
GOGC_LBD="${BENCH_GOGC:-}"
LBD_DEFAULT_GOGC="${BENCH_LBD_DEFAULT_GOGC:-0}"
HTTP_ENGINE="${BENCH_HTTP_ENGINE:-}"
ONLY="${BENCH_ONLY:-}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-1}"
OUT="${BENCH_OUT:-$ROOT/bench-results}"
KEEP="${BENCH_KEEP:-0}"
STRICT="${BENCH_STRICT:-0}"
NO_BUILD="${BENCH_NO_BUILD:-0}"
LBD="${LBD_BIN:-bin/lbd}"
LIST_ONLY=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
  case "$1" in
    --full) FULL=1; shift ;;
    --cells) CELLS_SEL="${2:?--cells needs a list}"; shift 2 ;;
    --cells=*) CELLS_SEL="${1#*=}"; shift ;;
    --runs) RUNS="${2:?--runs needs a number}"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --only) ONLY="${2:?--only needs a list}"; shift 2 ;;
    --only=*) ONLY="${1#*=}"; shift ;;
    --no-build) NO_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    --list) LIST_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench: unknown argument: $1 (try --help)" >&2; exit 1 ;;
  esac
done

for v in DURATION WARMUP THREADS RUNS REF_RUNS IDLE_WAIT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "bench: $v must be a whole number, not '${!v}'" >&2; exit 1; }
done
[[ -z "$GOGC_LBD" || "$GOGC_LBD" =~ ^([0-9]+|off)$ ]] || { echo "bench: BENCH_GOGC must be a number or off" >&2; exit 1; }
[[ -z "$CONNS_OVR" || "$CONNS_OVR" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "bench: BENCH_CONNS must be numbers, comma-separated" >&2; exit 1; }
((RUNS >= 1 && DURATION >= 1 && THREADS >= 1)) || { echo "bench: runs, duration, threads must be >= 1" >&2; exit 1; }

# Ports (all 127.0.0.1).
SHARED_PORTS=(18081 18082 18083)   # one nginx, one worker, three listen directives
SEP_PORTS=(18084 18085 18086)      # three nginx, one worker each
declare -A PROXY_PORT=([haproxy]=18100 [lbd]=18080 [lbd-gogc-default]=18080 [nginx]=18120)

# ---------------------------------------------------------------- the matrix
TRAFFIC=(http-ka http-close https-ka https-close tls-hs h2-m1 h2-m10 tcp-ka tcp-close)
BODIES=(100 4k 64k 1m)
CONNS_LIST=(64 512)
BACKENDS=(shared sep)
declare -A TRAFFIC_LABEL=(
  [http-ka]="HTTP/1.1 keep-alive" [http-close]="HTTP/1.1 new conn per request"
  [https-ka]="HTTPS keep-alive" [https-close]="HTTPS new conn per request, resumed"
  [tls-hs]="TLS full handshakes (ab)"
  [h2-m1]="HTTP/2 over TLS, -m 1" [h2-m10]="HTTP/2 over TLS, -m 10"
  [tcp-ka]="TCP keep-alive" [tcp-close]="TCP new conn per request")
declare -A BODY_BYTES=([100]=100 [4k]=4096 [64k]=65536 [1m]=1048576)
declare -A BODY_LABEL=([100]="100 B" [4k]="4 KiB" [64k]="64 KiB" [1m]="1 MiB")
declare -A BACKEND_LABEL=([shared]="1 worker, 3 ports" [sep]="3 processes")

ALL_CELLS=()
for be in "${BACKENDS[@]}"; do
  for tr in "${TRAFFIC[@]}"; do
    for body in "${BODIES[@]}"; do
      for c in "${CONNS_LIST[@]}"; do ALL_CELLS+=("$tr-$body-c$c-$be"); done
    done
  done
done

# The quick subset: the shapes issue 13 found lbd behind in, and one cell per dimension
# that the full matrix widens (512 connections, a new connection per request, a bulk
# body, separate backend processes, TLS handshakes, HTTP/2 with and without multiplexing).
SUBSET=(
  http-ka-100-c64-shared http-ka-100-c512-shared http-close-100-c64-shared
  http-ka-64k-c64-shared http-ka-100-c64-sep
  https-ka-100-c64-shared tls-hs-100-c64-shared
  h2-m1-100-c64-shared h2-m10-100-c64-shared
  tcp-ka-100-c64-shared tcp-ka-100-c512-shared tcp-close-100-c64-shared
)

# cell_parts CELL: sets C_TRAFFIC C_PROTO C_MODE C_BODY C_CONNS C_BACKENDS
cell_parts() {
  local IFS=- a
  read -r -a a <<<"$1"
  C_PROTO="${a[0]}"; C_MODE="${a[1]}"; C_TRAFFIC="${a[0]}-${a[1]}"
  C_BODY="${a[2]}"; C_CONNS="${a[3]#c}"; C_BACKENDS="${a[4]}"
}

# ---------------------------------------------------------------- proxies (--only)
PROXIES_ALL=(haproxy lbd lbd-gogc-default nginx direct)
declare -A ONLY_MAP=(
  [haproxy]="haproxy:" [lbd]="lbd:" [nginx]="nginx:" [direct]="direct:"
  [lbd-gogc-default]="lbd-gogc-default:"
  [haproxy-http]="haproxy:http" [lbd-http]="lbd:http" [lbd-http-gogc-default]="lbd-gogc-default:http"
  [nginx-proxy]="nginx:http" [haproxy-tcp]="haproxy:tcp" [lbd-tcp]="lbd:tcp"
  [haproxy-https]="haproxy:https" [lbd-https]="lbd:https")
declare -A WANT_PROXY=() WANT_PROTO=()
if [[ -n "$ONLY" ]]; then
  IFS=',' read -r -a _only <<<"$ONLY"
  for r in "${_only[@]}"; do
    [[ -n "${ONLY_MAP[$r]+x}" ]] || { echo "bench: unknown --only entry '$r'; known: ${!ONLY_MAP[*]}" >&2; exit 1; }
    m="${ONLY_MAP[$r]}"
    WANT_PROXY[${m%%:*}]=1
    [[ -n "${m#*:}" ]] && WANT_PROTO[${m#*:}]=1
  done
  # The old lbd-http-gogc-default row implies a GOGC for the lbd row to differ from.
  if [[ -n "${WANT_PROXY[lbd-gogc-default]+x}" && -z "$GOGC_LBD" ]]; then GOGC_LBD=400; fi
else
  WANT_PROXY=([haproxy]=1 [lbd]=1 [nginx]=1)
  if [[ -n "$GOGC_LBD" && "$LBD_DEFAULT_GOGC" == 1 ]]; then WANT_PROXY[lbd-gogc-default]=1; fi
fi
PROXIES=()
for p in "${PROXIES_ALL[@]}"; do [[ -n "${WANT_PROXY[$p]+x}" ]] && PROXIES+=("$p"); done
((${#PROXIES[@]})) || { echo "bench: --only chose no proxy" >&2; exit 1; }

# ---------------------------------------------------------------- cell selection
CELLS=()
declare -A _seen=()
add_cell() { [[ -n "${_seen[$1]+x}" ]] && return 0; _seen[$1]=1; CELLS+=("$1"); }
pick=()
if [[ -n "$CELLS_SEL" ]]; then
  IFS=',' read -r -a _pats <<<"$CELLS_SEL"
  for c in "${ALL_CELLS[@]}"; do
    for pat in "${_pats[@]}"; do
      # shellcheck disable=SC2053  # the pattern is meant to glob
      if [[ "$c" == $pat ]]; then pick+=("$c"); break; fi
    done
  done
  ((${#pick[@]})) || { echo "bench: BENCH_CELLS '$CELLS_SEL' matches no cell (try --list --full)" >&2; exit 1; }
elif [[ "$FULL" == 1 ]]; then
  pick=("${ALL_CELLS[@]}")
else
  pick=("${SUBSET[@]}")
fi
for c in "${pick[@]}"; do
  cell_parts "$c"
  if ((${#WANT_PROTO[@]})) && [[ -z "${WANT_PROTO[$C_PROTO]+x}" ]]; then continue; fi
  if [[ -n "$CONNS_OVR" ]]; then
    IFS=',' read -r -a _cs <<<"$CONNS_OVR"
    for n in "${_cs[@]}"; do add_cell "$C_TRAFFIC-$C_BODY-c$n-$C_BACKENDS"; done
  else
    add_cell "$c"
  fi
done
((${#CELLS[@]})) || { echo "bench: no cell left to run (BENCH_CELLS / --only)" >&2; exit 1; }

# proxy_applies PROXY CELL
NGINX_STREAM=0   # set once the stream module is known to load
proxy_applies() {
  cell_parts "$2"
  case "$1" in
    direct) [[ "$C_PROTO" == http ]] ;;
    nginx) [[ "$C_PROTO" != tcp || "$NGINX_STREAM" == 1 ]] ;;
    *) return 0 ;;
  esac
}

if [[ "$LIST_ONLY" == 1 ]]; then
  for c in "${CELLS[@]}"; do echo "$c"; done
  exit 0
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
  st="$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null)" || return 1
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
mkdir -p "$TMP/logs" "$TMP/load" "$TMP/cfg" "$TMP/www"
RAW="$TMP/runs.tsv"
: >"$RAW"

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

sum_tree() {     # sum_tree PID AWKPROG FILE: sums the awk output over PID and descendants
  local pid="$1" prog="$2" file="$3" total=0 p v
  for p in "$pid" $(descendants "$pid"); do
    v="$(awk "$prog" "/proc/$p/$file" 2>/dev/null || true)"
    [[ -n "$v" ]] && total=$((total + v))
  done
  echo "$total"
}
rss_kib()   { sum_tree "$2" "\$1 == \"$1:\" {print \$2}" status; }   # rss_kib VmRSS|VmHWM PID
cpu_ticks() { sum_tree "$1" '{sub(/.*\) /, ""); print $12 + $13}' stat; }   # utime+stime
CLK_TCK="$(getconf CLK_TCK)"

# ---------------------------------------------------------------- install
ensure_packages() {
  local missing=() pkg
  declare -A bin_of=([wrk]=wrk [haproxy]=haproxy [nginx]=nginx [nghttp2-client]=h2load [apache2-utils]=ab [curl]=curl [openssl]=openssl)
  for pkg in wrk haproxy nginx nghttp2-client apache2-utils curl openssl; do
    command -v "${bin_of[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
  done
  # nginx's tcp proxy (the stream module) is a package of its own on Debian.
  if ! stream_module >/dev/null && command -v apt-get >/dev/null && ((EUID == 0)); then
    missing+=(libnginx-mod-stream)
  fi
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
    case "$pkg" in haproxy|nginx) stop_package_service "$pkg" ;; esac
  done
}

stream_module() {  # prints the path of nginx's stream module, if installed
  local f
  for f in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
    [[ -r "$f" ]] && { echo "$f"; return 0; }
  done
  return 1
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

# ---------------------------------------------------------------- fixed files
write_static() {
  local b
  for b in "${BODIES[@]}"; do
    head -c "${BODY_BYTES[$b]}" /dev/zero | tr '\0' 'x' >"$TMP/www/$b"
  done
  chmod -R a+rX "$TMP/www"

  mkdir -p "$TMP/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
    -addext subjectAltName=DNS:bench,IP:127.0.0.1 -keyout "$TMP/tls/bench.key" -out "$TMP/tls/bench.crt" 2>/dev/null \
    || die "openssl could not make the benchmark certificate"
  cat "$TMP/tls/bench.crt" "$TMP/tls/bench.key" >"$TMP/tls/bench.pem"

  # The clients' TLS: wrk has no cipher options, so OpenSSL's own configuration forces
  # TLS 1.3, the one suite and the X25519 group on it (h2load gets the suite as a flag
  # and the rest from the same file).
  cat >"$TMP/tls/client.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = $CIPHER
Groups = X25519
EOF

  # wrk's done() hook: exact counts and the percentiles wrk does not print (p99.9).
  cat >"$TMP/done.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d status=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
EOF
}

# backend_ports SHAPE: the three server ports of a backend shape
backend_ports() { if [[ "$1" == shared ]]; then echo "${SHARED_PORTS[*]}"; else echo "${SEP_PORTS[*]}"; fi; }

write_backend_conf() {   # write_backend_conf DIR PORT...
  local dir="$1" p listens=""; shift
  mkdir -p "$dir"
  for p in "$@"; do listens+="        listen 127.0.0.1:$p backlog=4096;"$'\n'; done
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    open_file_cache max=64 inactive=1h;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $dir/tmp-body;
    proxy_temp_path $dir/tmp-proxy;
    fastcgi_temp_path $dir/tmp-fastcgi;
    uwsgi_temp_path $dir/tmp-uwsgi;
    scgi_temp_path $dir/tmp-scgi;
    server {
$listens        root $TMP/www;
        location / { }
    }
}
EOF
}

# ---------------------------------------------------------------- proxy configs
write_haproxy() {   # write_haproxy CELL -> $TMP/cfg/haproxy.cfg
  cell_parts "$1"
  local mode=http bind="bind 127.0.0.1:${PROXY_PORT[haproxy]}" extra="" i=0 p servers=""
  [[ "$C_PROTO" == tcp ]] && mode=tcp
  [[ "$mode" == http ]] && extra=$'    option http-keep-alive\n    http-reuse always'
  case "$C_PROTO" in https|h2|tls) bind+=" ssl crt $TMP/tls/bench.pem alpn h2,http/1.1" ;; esac
  for p in $(backend_ports "$C_BACKENDS"); do i=$((i + 1)); servers+="    server s$i 127.0.0.1:$p"$'\n'; done
  cat >"$TMP/cfg/haproxy.cfg" <<EOF
global
    nbthread $(nproc)
    maxconn 8000
    ssl-default-bind-ciphersuites $CIPHER
    ssl-default-bind-options ssl-min-ver TLSv1.3

defaults
    mode $mode
    timeout connect 5s
    timeout client 60s
    timeout server 60s
$extra

frontend fe
    $bind
    default_backend app

backend app
    balance roundrobin
$servers
EOF
}

write_lbd() {   # write_lbd CELL -> $TMP/cfg/lbd.yaml
  cell_parts "$1"
  local mode=http i=0 p servers="" extra=""
  [[ "$C_PROTO" == tcp ]] && mode=tcp
  if [[ "$mode" == http && -n "$HTTP_ENGINE" ]]; then extra+=$'\n'"    engine: $HTTP_ENGINE"; fi
  case "$C_PROTO" in
    https|h2|tls)   # lbd cannot restrict TLS 1.3 suites (Go chooses); the clients offer only $CIPHER
      extra+=$'\n'"    tls: {certificates: [{cert_file: $TMP/tls/bench.crt, key_file: $TMP/tls/bench.key}], min_version: \"1.3\"}" ;;
  esac
  for p in $(backend_ports "$C_BACKENDS"); do i=$((i + 1)); servers+="      - {name: s$i, address: 127.0.0.1:$p}"$'\n'; done
  rm -rf "$TMP/lbd-state"; mkdir -p "$TMP/lbd-state"; rm -f "$TMP/lbd.sock"
  cat >"$TMP/cfg/lbd.yaml" <<EOF
node:
  name: bench
  state_dir: $TMP/lbd-state
  admin:
    socket: $TMP/lbd.sock
    listen: ""
frontends:
  - name: fe
    mode: $mode
    bind: 127.0.0.1:${PROXY_PORT[lbd]}
    backend: app$extra
backends:
  - name: app
    balance: roundrobin
    servers:
$servers
EOF
}

write_nginx() {   # write_nginx CELL -> $TMP/cfg/nginx/nginx.conf
  cell_parts "$1"
  local d="$TMP/cfg/nginx" p servers="" listen="listen 127.0.0.1:${PROXY_PORT[nginx]} backlog=4096" tls="" mod=""
  mkdir -p "$d"
  for p in $(backend_ports "$C_BACKENDS"); do servers+="        server 127.0.0.1:$p;"$'\n'; done
  if [[ "$C_PROTO" == tcp ]]; then
    mod="load_module $(stream_module);"
  fi
  case "$C_PROTO" in
    https|h2|tls)
      listen+=" ssl http2"
      tls="        ssl_certificate $TMP/tls/bench.crt;
        ssl_certificate_key $TMP/tls/bench.key;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites $CIPHER;" ;;
  esac
  {
    cat <<EOF
$mod
daemon off;
worker_processes $(nproc);
worker_rlimit_nofile 16384;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 16384; }
EOF
    if [[ "$C_PROTO" == tcp ]]; then
      cat <<EOF
stream {
    upstream app {
$servers    }
    server {
        $listen;
        proxy_pass app;
    }
}
EOF
    else
      cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $d/tmp-body;
    proxy_temp_path $d/tmp-proxy;
    fastcgi_temp_path $d/tmp-fastcgi;
    uwsgi_temp_path $d/tmp-uwsgi;
    scgi_temp_path $d/tmp-scgi;
    upstream app {
$servers        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        $listen;
$tls
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
    fi
  } >"$d/nginx.conf"
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

BACKEND_STARTED=()
start_backends() {   # start_backends SHAPE
  local shape="$1" i p ports
  read -r -a ports <<<"$(backend_ports "$shape")"
  for p in "${ports[@]}"; do port_open "$p" && die "port $p is already in use"; done
  if [[ "$shape" == shared ]]; then
    write_backend_conf "$TMP/be-shared" "${ports[@]}"
    start_bg be-shared nginx -p "$TMP/be-shared" -c "$TMP/be-shared/nginx.conf" -e "$TMP/be-shared/error.log"
    for p in "${ports[@]}"; do
      wait_port "$p" "$STARTED_PID" 10 || { cat "$TMP/logs/be-shared.out" >&2 || true; die "backend nginx on :$p did not start"; }
    done
  else
    for i in 0 1 2; do
      write_backend_conf "$TMP/be-sep$i" "${ports[$i]}"
      start_bg "be-sep$i" nginx -p "$TMP/be-sep$i" -c "$TMP/be-sep$i/nginx.conf" -e "$TMP/be-sep$i/error.log"
      wait_port "${ports[$i]}" "$STARTED_PID" 10 || { cat "$TMP/logs/be-sep$i.out" >&2 || true; die "backend nginx on :${ports[$i]} did not start"; }
    done
  fi
  for p in "${ports[@]}"; do
    check_get http "$p" 1m || die "backend nginx on :$p does not serve the bodies"
  done
  BACKEND_STARTED+=("$shape")
}

# check_get PROTO PORT BODY: one GET through PORT must answer 200 with the whole body
# (over HTTP/2 for h2, with the forced TLS 1.3 suite for https and h2).
check_get() {
  local proto="$1" port="$2" body="$3" out want args=()
  want="200 ${BODY_BYTES[$body]}"
  case "$proto" in
    http|tcp) args=(--http1.1 "http://127.0.0.1:$port/$body") ;;
    https|tls) args=(--http1.1 -k --tlsv1.3 --tls13-ciphers "$CIPHER" "https://127.0.0.1:$port/$body") ;;
    h2) args=(--http2 -k --tlsv1.3 --tls13-ciphers "$CIPHER" "https://127.0.0.1:$port/$body"); want+=" 2" ;;
  esac
  out="$(timeout 10 curl -s -o /dev/null -w '%{http_code} %{size_download} %{http_version}' "${args[@]}" 2>&1 || true)"
  [[ "$out" == "$want"* ]] && return 0
  warn "sanity GET ${args[*]: -1} answered '$out', expected '$want'"
  return 1
}

SUT_PID=""; SUT_PORT=""
sut_start() {   # sut_start PROXY CELL: sets SUT_PID ("" for direct) and SUT_PORT
  local proxy="$1" cell="$2" ports
  SUT_PID=""
  cell_parts "$cell"
  if [[ "$proxy" == direct ]]; then
    read -r -a ports <<<"$(backend_ports "$C_BACKENDS")"
    SUT_PORT="${ports[0]}"
    return 0
  fi
  SUT_PORT="${PROXY_PORT[$proxy]}"
  port_open "$SUT_PORT" && { warn "port $SUT_PORT already in use"; return 1; }
  case "$proxy" in
    haproxy) write_haproxy "$cell"; start_bg "$proxy" haproxy -db -f "$TMP/cfg/haproxy.cfg" ;;
    nginx)
      write_nginx "$cell"
      start_bg "$proxy" nginx -p "$TMP/cfg/nginx" -c "$TMP/cfg/nginx/nginx.conf" -e "$TMP/cfg/nginx/error.log" ;;
    lbd)
      [[ "$LBD_OK" == 1 ]] || return 1
      write_lbd "$cell"
      if [[ -n "$GOGC_LBD" ]]; then
        start_bg "$proxy" env GOGC="$GOGC_LBD" "$LBD" run --config "$TMP/cfg/lbd.yaml"
      else
        start_bg "$proxy" env -u GOGC "$LBD" run --config "$TMP/cfg/lbd.yaml"
      fi ;;
    lbd-gogc-default)
      [[ "$LBD_OK" == 1 ]] || return 1
      write_lbd "$cell"
      start_bg "$proxy" env -u GOGC "$LBD" run --config "$TMP/cfg/lbd.yaml" ;;
    *) die "unknown proxy $proxy" ;;
  esac
  SUT_PID="$STARTED_PID"
  if ! wait_port "$SUT_PORT" "$SUT_PID" 15; then
    warn "$proxy did not listen on 127.0.0.1:$SUT_PORT; its output:"
    tail -20 "$TMP/logs/$proxy.out" >&2 || true
    stop_pid "$SUT_PID"; SUT_PID=""
    return 1
  fi
  return 0
}

# ---------------------------------------------------------------- load
# run_load CELL PORT SECONDS OUTFILE [GRACE]: one load run, killed GRACE seconds (30)
# after its duration; its output in OUTFILE (h2load's and ab's per-request logs in
# OUTFILE.log). Returns the generator's status (124: killed by the timeout).
run_load() {
  local cell="$1" port="$2" secs="$3" out="$4" grace="${5:-30}" pid rc=0 cmd=()
  cell_parts "$cell"
  local path="/$C_BODY"
  case "$C_PROTO" in
    http|tcp|https)
      local scheme=http
      [[ "$C_PROTO" == https ]] && scheme=https
      cmd=(wrk -t"$THREADS" -c"$C_CONNS" -d"${secs}s" --timeout 5s -s "$TMP/done.lua")
      [[ "$C_MODE" == close ]] && cmd+=(-H "Connection: close")
      cmd+=("$scheme://127.0.0.1:$port$path") ;;
    tls)   # ab: HTTP/1.0, a new connection and a full handshake (no resumption) per request
      cmd=(ab -q -r -s 5 -c "$C_CONNS" -t "$secs" -n $((secs * 50000)) -g "$out.log" "https://127.0.0.1:$port$path") ;;
    h2)
      # -N: h2load waits for every client at the end, and a client that never got its
      # connection going would hold it until the outer timeout.
      cmd=(h2load -t"$THREADS" -c"$C_CONNS" -m"${C_MODE#m}" -D"$secs" -N 5 --tls13-ciphers="$CIPHER"
        --log-file="$out.log" "https://127.0.0.1:$port$path") ;;
  esac
  OPENSSL_CONF="$TMP/tls/client.cnf" timeout --kill-after=5 $((secs + grace)) "${cmd[@]}" >"$out" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# parse_load CELL OUTFILE -> "rps p50_ms p99_ms p999_ms errors requests"
parse_load() {
  cell_parts "$1"
  if [[ "$C_PROTO" == h2 ]]; then
    local head lat
    # h2load: "finished in 5.00s, 1234.5 req/s, ..."; "requests: T total, S started, D done,
    # OK succeeded, F failed, E errored, TO timeout"; "status codes: a 2xx, b 3xx, c 4xx, d 5xx"
    head="$(awk '
      $1 == "finished" { secs = $3 + 0 }
      $1 == "requests:" { ok = $8 + 0; failed = $10 + 0; errored = $12 + 0; tmo = $14 + 0 }
      $1 == "status" && $2 == "codes:" { bad = $7 + $9 }
      END { if (secs <= 0 || ok == "") exit 1; printf "%.2f %d %d\n", ok / secs, failed + errored + tmo + bad, ok }' "$2")" || return 1
    # Percentiles from the per-request log (third column: microseconds to the response).
    lat="$(awk -F'\t' '{print $3}' "$2.log" | sort -n | awk '
      { v[NR] = $1 }
      function pct(p,  i) { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
      END { if (NR == 0) { print "- - -"; exit } printf "%.3f %.3f %.3f\n", pct(50), pct(99), pct(99.9) }')" || return 1
    local rps errs reqs p50 p99 p999
    read -r rps errs reqs <<<"$head"
    read -r p50 p99 p999 <<<"$lat"
    echo "$rps $p50 $p99 $p999 $errs $reqs"
  elif [[ "$C_PROTO" == tls ]]; then
    local head lat rps errs reqs p50 p99 p999
    # ab: "Time taken for tests: 4.001 seconds", "Complete requests: N" (failed handshakes
    # included, and reported only as "SSL handshake failed" lines), "Failed requests: F",
    # "Non-2xx responses: X"; its -g file has each request's total time (ms) in column 5.
    head="$(awk '
      $1 == "Time" && $2 == "taken" { secs = $5 + 0 }
      $1 == "Complete" && $2 == "requests:" { done = $3 + 0; seen = 1 }
      $1 == "Failed" && $2 == "requests:" { failed = $3 + 0 }
      $1 == "Non-2xx" { non2 = $3 + 0 }
      /SSL handshake failed/ { hsf++ }
      END { if (secs <= 0 || !seen) exit 1; ok = done - failed - non2 - hsf; if (ok < 0) ok = 0
            printf "%.2f %d %d\n", ok / secs, failed + non2 + hsf, ok }' "$2")" || return 1
    lat="$(awk -F'\t' 'NR > 1 {print $5}' "$2.log" | sort -n | awk '
      { v[NR] = $1 }
      function pct(p,  i) { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; return v[i] }
      END { if (NR == 0) { print "- - -"; exit } printf "%.3f %.3f %.3f\n", pct(50), pct(99), pct(99.9) }')" || return 1
    read -r rps errs reqs <<<"$head"
    read -r p50 p99 p999 <<<"$lat"
    echo "$rps $p50 $p99 $p999 $errs $reqs"
  else
    awk '
      $1 == "BENCH" {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] + 0 }
        found = 1
      }
      END {
        if (!found || f["duration_us"] <= 0) exit 1
        if (f["requests"] == 0) {   # none completed within the duration: no latency to report
          printf "0 - - - %d 0\n", f["errors"]; exit
        }
        printf "%.2f %.3f %.3f %.3f %d %d\n", f["requests"] * 1e6 / f["duration_us"],
          f["p50_us"] / 1000, f["p99_us"] / 1000, f["p999_us"] / 1000, f["errors"], f["requests"]
      }' "$2"
  fi
}

# ---------------------------------------------------------------- one measurement
PROBLEMS=()   # "cell proxy: reason"
LBD_BAD=0

measure() {   # measure CELL PROXY REP
  local cell="$1" proxy="$2" rep="$3" idle="-" peak="-" cpu="-" t0=0 t1=0 parsed
  local out="$TMP/load/$cell.$proxy.$rep"
  cell_parts "$cell"
  if ! sut_start "$proxy" "$cell"; then
    PROBLEMS+=("$cell $proxy: did not start (rep $rep)")
    return 1
  fi
  if ! check_get "$C_PROTO" "$SUT_PORT" "$C_BODY"; then
    [[ -n "$SUT_PID" ]] && { stop_pid "$SUT_PID"; SUT_PID=""; }
    PROBLEMS+=("$cell $proxy: the sanity GET failed (rep $rep)")
    return 1
  fi
  if [[ -n "$SUT_PID" ]]; then
    sleep "$IDLE_WAIT"
    idle="$(rss_kib VmRSS "$SUT_PID")"
  fi
  # A short h2load run with many connections sometimes never exits (h2load 1.52 waits
  # for a client that had not got going when the time was up): the warmup's result is
  # not needed, so it gets little grace.
  if ((WARMUP > 0)); then run_load "$cell" "$SUT_PORT" "$WARMUP" "$out.warmup" 5 || true; fi
  [[ -n "$SUT_PID" ]] && t0="$(cpu_ticks "$SUT_PID")"
  local lrc=0
  # h2load ends a timed run by waiting for the streams in flight: 5120 of 1 MiB take a
  # while on two cores.
  run_load "$cell" "$SUT_PORT" "$DURATION" "$out" 60 || lrc=$?
  if ((lrc == 124 || lrc == 137)); then
    PROBLEMS+=("$cell $proxy: the load generator did not exit within 60 s of its duration and was killed (rep $rep)")
  fi
  if [[ -n "$SUT_PID" ]]; then
    if ! proc_alive "$SUT_PID"; then
      PROBLEMS+=("$cell $proxy: the process died during the load (rep $rep)")
      tail -20 "$TMP/logs/$proxy.out" >&2 || true
      stop_pid "$SUT_PID"; SUT_PID=""
      return 1
    fi
    t1="$(cpu_ticks "$SUT_PID")"
    peak="$(rss_kib VmHWM "$SUT_PID")"
    stop_pid "$SUT_PID"; SUT_PID=""
  fi
  if ! parsed="$(parse_load "$cell" "$out")"; then
    PROBLEMS+=("$cell $proxy: no load result (rep $rep)")
    sed 's/^/    /' "$out" | tail -20 >&2 || true
    return 1
  fi
  local rps p50 p99 p999 errs reqs
  read -r rps p50 p99 p999 errs reqs <<<"$parsed"
  if [[ "$C_PROTO" == h2 ]] && ! grep -q "^Cipher: $CIPHER\$" "$out"; then
    PROBLEMS+=("$cell $proxy: h2load did not report the cipher $CIPHER: $(grep -m1 '^Cipher:' "$out" || echo none)")
  fi
  if [[ "$C_PROTO" == tls ]] && ! grep -q "^SSL/TLS Protocol: *TLSv1.3,$CIPHER," "$out"; then
    PROBLEMS+=("$cell $proxy: ab did not report TLSv1.3 with $CIPHER: $(grep -m1 '^SSL/TLS Protocol:' "$out" || echo none)")
  fi
  if ((reqs == 0)); then
    PROBLEMS+=("$cell $proxy: no request completed within ${DURATION}s (rep $rep)")
  fi
  if [[ "$proxy" != direct ]] && ((reqs > 0)); then
    cpu="$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$cell" "$C_PROTO" "$C_MODE" "$C_BODY" "$C_CONNS" "$C_BACKENDS" "$proxy" "$rep" \
    "$rps" "$p50" "$p99" "$p999" "$cpu" "$idle" "$peak" "$errs" "$reqs" >>"$RAW"
  log "  $proxy: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, p99.9 ${p999} ms, ${cpu} µs CPU/req, RSS ${idle}/${peak} KiB, errors $errs"
  if ((errs > 0)); then
    warn "$cell $proxy: $errs errors during the measurement (rep $rep)"
    PROBLEMS+=("$cell $proxy: $errs errors (rep $rep)")
    [[ "$proxy" == lbd* ]] && LBD_BAD=1
  fi
  return 0
}

# ---------------------------------------------------------------- main
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ensure_packages
for b in wrk haproxy nginx h2load ab curl openssl; do
  command -v "$b" >/dev/null || die "$b is needed"
done
if stream_module >/dev/null; then NGINX_STREAM=1; fi

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}'; then
  warn "load average is $LOAD_START on $(nproc) CPUs: other work is running, the numbers will be noisy"
fi

write_static
LBD_OK=0
LBD_WHY=""
need_lbd=0
for p in "${PROXIES[@]}"; do [[ "$p" == lbd* ]] && need_lbd=1; done
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
    write_lbd "${CELLS[0]}"
    if ! timeout 20 "$LBD" validate --config "$TMP/cfg/lbd.yaml" >"$TMP/logs/validate.log" 2>&1; then
      warn "$LBD validate --config refused the bench config (trying to run it anyway):"
      sed 's/^/    /' "$TMP/logs/validate.log" >&2 || true
    fi
    LBD_OK=1
  else
    LBD_WHY="${LBD_WHY:+$LBD_WHY; }$LBD not found"
    warn "$LBD not available: lbd is skipped"
    LBD_BAD=1
  fi
fi

for c in "${CELLS[@]}"; do
  cell_parts "$c"
  [[ " ${BACKEND_STARTED[*]} " == *" $C_BACKENDS "* ]] || start_backends "$C_BACKENDS"
done
log "backends: ${BACKEND_STARTED[*]} (nginx, worker_processes 1, static files $(printf '/%s ' "${BODIES[@]}"))"

runs_of() { case "$1" in nginx|direct) echo $((REF_RUNS < RUNS ? REF_RUNS : RUNS)) ;; *) echo "$RUNS" ;; esac; }
n_meas=0
for c in "${CELLS[@]}"; do
  for p in "${PROXIES[@]}"; do proxy_applies "$p" "$c" && n_meas=$((n_meas + $(runs_of "$p"))); done
done
log "${#CELLS[@]} cells, $n_meas measurements of ${WARMUP}s + ${DURATION}s; about $((n_meas * (WARMUP + DURATION + IDLE_WAIT + 1) / 60 + 1)) minutes"

T_START="$(date -u '+%F %H:%M:%S')"
i_cell=0
for c in "${CELLS[@]}"; do
  i_cell=$((i_cell + 1))
  cell_parts "$c"
  for ((rep = 1; rep <= RUNS; rep++)); do
    procs=()
    for p in "${PROXIES[@]}"; do
      if proxy_applies "$p" "$c" && ((rep <= $(runs_of "$p"))); then procs+=("$p"); fi
    done
    log "[$i_cell/${#CELLS[@]}] $c rep $rep/$RUNS: ${C_CONNS} conns, ${DURATION}s"
    n=${#procs[@]}
    for ((k = 0; k < n; k++)); do   # the order rotates from rep to rep
      p="${procs[$(((k + rep - 1) % n))]}"
      if [[ "$p" == lbd* && "$LBD_OK" != 1 ]]; then continue; fi
      if ! measure "$c" "$p" "$rep"; then
        warn "$c $p: not measured in rep $rep"
        [[ "$p" == lbd* ]] && LBD_BAD=1
        [[ -n "$SUT_PID" ]] && { stop_pid "$SUT_PID"; SUT_PID=""; }
      fi
    done
  done
done
T_END="$(date -u '+%F %H:%M:%S')"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report
mkdir -p "$OUT"
stamp="$(date -u '+%Y%m%dT%H%M%SZ')"
TSV="$OUT/matrix-$stamp.tsv"; MD="$OUT/matrix-$stamp.md"; RUNS_TSV="$OUT/matrix-$stamp-runs.tsv"
RAW_HEAD=$'cell\tproto\tmode\tbody\tconns\tbackends\tproxy\trep\treq_s\tp50_ms\tp99_ms\tp999_ms\tcpu_us_per_req\tidle_rss_kib\tloaded_rss_kib\terrors\trequests'
{ echo "$RAW_HEAD"; cat "$RAW"; } >"$RUNS_TSV"

# Medians per cell and proxy, in the order measured, and lbd's ratios to HAProxy.
awk -F'\t' -v OFS='\t' '
  function median(s,  n, a, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n == 0) return ""
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function add(k, c, v) { if (v != "-" && v != "") vals[k, c] = vals[k, c] " " v }
  {
    k = $1 SUBSEP $7
    if (!(k in seen)) { seen[k] = 1; order[++n] = k; meta[k] = $1 OFS $2 OFS $3 OFS $4 OFS $5 OFS $6 OFS $7 }
    reps[k]++
    for (c = 9; c <= 15; c++) add(k, c, $c)
    if ($16 + 0 > errs[k]) errs[k] = $16 + 0
  }
  END {
    print "cell", "proto", "mode", "body", "conns", "backends", "proxy", "reps", "req_s", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_req", "idle_rss_kib", "loaded_rss_kib", "max_errors", "ratio_req_s", "ratio_p99", "ratio_cpu"
    for (i = 1; i <= n; i++) {
      k = order[i]
      for (c = 9; c <= 15; c++) m[k, c] = median(vals[k, c])
    }
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, kk, SUBSEP)
      h = kk[1] SUBSEP "haproxy"
      rr = rp = rc = ""
      if (kk[2] ~ /^lbd/ && (h in seen)) {
        if (m[h, 9] > 0 && m[k, 9] != "") rr = sprintf("%.2f", m[k, 9] / m[h, 9])
        if (m[h, 11] > 0 && m[k, 11] != "") rp = sprintf("%.2f", m[k, 11] / m[h, 11])
        if (m[h, 13] > 0 && m[k, 13] != "") rc = sprintf("%.2f", m[k, 13] / m[h, 13])
      }
      line = meta[k] OFS reps[k]
      for (c = 9; c <= 15; c++) line = line OFS m[k, c]
      print line, errs[k] + 0, rr, rp, rc
    }
  }' "$RAW" >"$TSV"

kernel="$(uname -sr)"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
hap_v="$(haproxy -v 2>&1 | head -1 || true)"
ngx_v="$(nginx -v 2>&1 | head -1 || true)"
wrk_v="$(wrk -v 2>&1 | head -1 || true)"
h2l_v="$(h2load --version 2>&1 | head -1 || true)"
ab_v="$(ab -V 2>&1 | head -1 | sed 's/^This is //; s/, Version/ version/; s/ <.*//' || true)"
go_v="$(go version 2>/dev/null || echo "go: not found")"
lbd_v="not available"
if [[ "$LBD_OK" == 1 ]]; then
  lbd_v="$(timeout 5 "$LBD" --version 2>/dev/null | head -1 || true)"
  lbd_v="${lbd_v:-$LBD} (built $(date -r "$LBD" '+%F %T' 2>/dev/null || echo "?"), tree $(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo "without commits")), GOGC ${GOGC_LBD:-default}${HTTP_ENGINE:+, engine $HTTP_ENGINE}"
fi

{
  echo "## lbd benchmark matrix — $T_START to ${T_END#* } UTC"
  echo
  echo "- command: \`$(env | grep -E '^(BENCH_[A-Z_]+|LBD_BIN)=' | sort | tr '\n' ' ')$CMDLINE\`"
  echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo " (dirty)")"
  echo "- machine: $(nproc) CPUs${cpu_model:+ ($cpu_model)}, $kernel; load average $LOAD_START at the start, $LOAD_END at the end"
  echo "- $hap_v; $ngx_v; $wrk_v; $h2l_v; $ab_v; $go_v"
  echo "- lbd: $lbd_v"
  echo "- each cell: lbd and HAProxy $RUNS reps, nginx $(runs_of nginx), every measurement on a freshly started proxy, the order rotating from rep to rep; ${WARMUP}s warmup then ${DURATION}s measured; medians shown"
  echo "- load: wrk -t$THREADS --timeout 5s (HTTP/1.1, HTTPS, TCP; \`Connection: close\` for a new connection per request), ab (full TLS handshakes, HTTP/1.0), h2load -t$THREADS (HTTP/2 over TLS); TLS 1.3 with $CIPHER and X25519 forced on the clients, HAProxy and nginx; lbd: min_version 1.3"
  echo "- proxies: HAProxy nbthread $(nproc), nginx worker_processes $(nproc), lbd GOMAXPROCS $(nproc); round robin over 3 servers; backends: nginx, static files, sendfile"
  echo
} >"$MD"

awk -F'\t' -v tl="$(for k in "${!TRAFFIC_LABEL[@]}"; do printf '%s=%s;' "$k" "${TRAFFIC_LABEL[$k]}"; done)" \
    -v bl="$(for k in "${!BODY_LABEL[@]}"; do printf '%s=%s;' "$k" "${BODY_LABEL[$k]}"; done)" \
    -v be="$(for k in "${!BACKEND_LABEL[@]}"; do printf '%s=%s;' "$k" "${BACKEND_LABEL[$k]}"; done)" '
  function labels(s, arr,  n, a, i, kv) { n = split(s, a, ";"); for (i = 1; i <= n; i++) if (a[i] != "") { split(a[i], kv, "="); arr[kv[1]] = kv[2] } }
  function mib(k) { return (k == "") ? "-" : sprintf("%.1f", k / 1024) }
  function num(v, f) { return (v == "") ? "-" : sprintf(f, v) }
  BEGIN {
    labels(tl, T); labels(bl, B); labels(be, BE)
    print "| traffic | body | conns | backends | proxy | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | RSS idle / loaded MiB | errors | lbd/HAProxy req/s, p99, CPU |"
    print "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
  }
  NR == 1 { next }
  {
    tr = $2 "-" $3
    ratio = ""
    if ($7 ~ /^lbd/ && $17 != "") ratio = $17 " / " $18 " / " $19
    same = ($1 == last)
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n",
      same ? "" : T[tr], same ? "" : B[$4], same ? "" : $5, same ? "" : BE[$6], $7,
      num($9, ($9 < 100) ? "%.1f" : "%.0f"), num($10, "%.2f"), num($11, "%.2f"), num($12, "%.2f"), num($13, "%.1f"),
      mib($14), mib($15), $16, ratio
    last = $1
    if ($7 == "lbd" && $17 != "") {
      cells++
      if (worst_r == "" || $17 + 0 < worst_r) { worst_r = $17 + 0; wr_c = $1 }
      if ($18 != "" && (worst_p == "" || $18 + 0 > worst_p)) { worst_p = $18 + 0; wp_c = $1 }
      if ($19 != "" && (worst_c == "" || $19 + 0 > worst_c)) { worst_c = $19 + 0; wc_c = $1 }
      if ($17 + 0 < 1) behind_r++
      if ($18 != "" && $18 + 0 > 1) behind_p++
      if ($19 != "" && $19 + 0 > 1) behind_c++
    }
    if ($7 == "lbd" && $14 != "" && (lbd_idle == "" || $14 + 0 > lbd_idle)) lbd_idle = $14 + 0
    if ($15 != "") peak[$1, $7] = $15
  }
  END {
    print ""
    if (cells == 0) { print "WORST lbd/HAProxy: no cell has both lbd and HAProxy measured"; exit }
    printf "WORST lbd/HAProxy over %d cells: req/s %.2f (%s); p99 %.2f (%s); CPU µs/req %.2f (%s)\n",
      cells, worst_r, wr_c, worst_p, wp_c, worst_c, wc_c
    printf "lbd behind HAProxy (ratio worse than 1.00): req/s in %d of %d cells, p99 in %d, CPU per request in %d\n",
      behind_r, cells, behind_p, behind_c
    for (k in peak) { split(k, kk, SUBSEP); if (kk[2] == "lbd" && ((kk[1], "haproxy") in peak)) { np++; if (peak[k] > peak[kk[1], "haproxy"]) over++ } }
    printf "lbd idle RSS at most %.1f MiB (target < 20); loaded RSS above HAProxy'\''s in %d of %d cells\n", lbd_idle / 1024, over, np
  }' "$TSV" >>"$MD"

if ((${#PROBLEMS[@]})); then
  { echo; echo "Problems:"; printf '  %s\n' "${PROBLEMS[@]}"; } >>"$MD"
fi
{ echo; echo "Machine-readable: $TSV (medians), $RUNS_TSV (every measurement)."; } >>"$MD"

echo
cat "$MD"

rc=0
if ((LBD_BAD)) && printf '%s\n' "${PROXIES[@]}" | grep -q '^lbd'; then
  echo
  echo "lbd: not (fully) measured or errors under load${LBD_WHY:+ — $LBD_WHY} (exit 2)"
  rc=2
elif [[ "$STRICT" == 1 ]]; then
  # The targets of issue 13: every cell at least HAProxy's req/s, at most its p99 and its
  # CPU per request; idle RSS under 20 MiB; loaded RSS at most HAProxy's.
  if awk -F'\t' 'NR > 1 && $7 == "lbd" && $17 != "" {
        if ($17 + 0 < 1 || ($18 != "" && $18 + 0 > 1) || ($19 != "" && $19 + 0 > 1) || $14 + 0 >= 20480) miss = 1
      }
      END { exit !miss }' "$TSV" || grep -q "loaded RSS above HAProxy's in [1-9]" "$MD"; then
    rc=3
  fi
fi
exit "$rc"
