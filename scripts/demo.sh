#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: two lbd nodes share a VIP; watch it fail over.
#
# As root, on a fresh Debian machine (installs iproute2 and procps when missing; needs Go
# to build). Builds lbd, lbctl and two small programs (scripts/demo-backend,
# scripts/demo-client), then, in network namespaces on one bridge (198.18.0.0/24, the
# benchmarking range; nothing touches the host's network):
#
#   lb1 198.18.0.1 (priority 150)   lb2 198.18.0.2 (priority 100)   VIP 198.18.0.100:80
#   b1 198.18.0.11  b2 198.18.0.12  b3 198.18.0.13 (HTTP :8080)     client 198.18.0.200
#
# and narrates with measured numbers: requests spread over the backends, who owns the
# VIP, the master SIGKILLed while the client sends a request every 10 ms on a new
# connection (the outage and the failed requests), and the old master coming back
# (preemption: the VIP moves back; that outage too). Everything is removed at the end,
# also on Ctrl-C or failure (scripts/lab.sh's trap); any failed step exits non-zero.
#
# Environment: DEMO_INTERVAL (advert_interval, default 100ms), DEMO_KEEP_LOGS=1 keeps
# the lbd logs in /tmp/lbd-demo-logs.

set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lab.sh
source scripts/lab.sh

INTERVAL=${DEMO_INTERVAL:-100ms}
VIP=198.18.0.100
START=$SECONDS

bold() { if [[ -t 1 ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
say() { printf '    %s\n' "$*"; }
step() { echo; bold "== $*"; }
fail() {
	echo "demo: FAILED: $*" >&2
	for f in "${LAB_DIR:-/nonexistent}"/lb*.log; do
		[[ -f $f ]] && { echo "--- last lines of $(basename "$f"):" >&2; tail -n 15 "$f" >&2; }
	done
	exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR

# wait_until SECONDS WHAT CMD...: polls CMD every 50 ms until it succeeds.
wait_until() {
	local limit=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + limit))
	until "$@"; do
		((SECONDS < deadline)) || fail "$what: not after ${limit}s"
		sleep 0.05
	done
}

[[ $EUID -eq 0 ]] || { echo "make demo needs root (network namespaces): sudo make demo" >&2; exit 1; }
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v sysctl >/dev/null || missing+=(procps)
if ((${#missing[@]})); then
	command -v apt-get >/dev/null || fail "please install: ${missing[*]}"
	echo "installing ${missing[*]} ..."
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || fail "Go is not installed (expected in /usr/local/go/bin)"

step "Building lbd, lbctl, the demo backend and client"
[[ -x bin/lbd && -x bin/lbctl ]] || fail "bin/lbd or bin/lbctl missing: run make demo (it builds them)"
CGO_ENABLED=0 go build -o bin/demo-backend ./scripts/demo-backend
CGO_ENABLED=0 go build -o bin/demo-client ./scripts/demo-client

lab_on_exit() {
	trap - ERR # cleanup goes on past failures
	set +eE
	if [[ -n ${DEMO_KEEP_LOGS:-} && -n ${LAB_DIR:-} ]]; then
		mkdir -p /tmp/lbd-demo-logs && cp "$LAB_DIR"/*.log /tmp/lbd-demo-logs/ 2>/dev/null || true
	fi
}
lab_init "lbdemo-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"

step "Network namespaces $LAB_PREFIX-* on one bridge"
lab_node lb1 1 >/dev/null
lab_node lb2 2 >/dev/null
for i in 1 2 3; do lab_node "b$i" "1$i" >/dev/null; done
lab_node client 200 >/dev/null
say "lb1 198.18.0.1 (priority 150), lb2 198.18.0.2 (priority 100)"
say "backends b1 198.18.0.11, b2 198.18.0.12, b3 198.18.0.13; client 198.18.0.200"
for i in 1 2 3; do
	lab_start "b$i" "$LAB_DIR/b$i.log" "$ROOT/bin/demo-backend" -name "b$i" -listen "198.18.0.1$i:8080" >/dev/null
done

# lbd_config NAME PRIORITY: the node's config file (the cluster part is the same on both).
lbd_config() {
	lab_lbd_config "$1" "$2" "$INTERVAL" "$VIP" "$ROOT/bin/lbd" || fail "bin/lbd validate --config $LAB_DIR/$1.yaml"
}

# owns NAME: node NAME has the VIP on eth0.
owns() { lab_exec "$1" ip -o -4 addr show dev eth0 | grep -q " $VIP/"; }
owner() {
	local n out=()
	for n in lb1 lb2; do
		if [[ -n ${DEAD:-} && $n == "$DEAD" ]]; then continue; fi
		owns "$n" && out+=("$n")
	done
	echo "${out[*]:-none}"
}
only() { [[ $(owner) == "$1" ]]; }
serving() { lab_exec client "$ROOT/bin/demo-client" -url "http://$VIP/" -count 1 | grep -q '^summary .* ok=1 '; }
vip_status() {
	local n
	for n in "$@"; do
		say "lbctl vip status on $n:"
		"$ROOT/bin/lbctl" --socket "$LAB_DIR/$n.sock" vip status | sed 's/^/        /'
	done
}

# measure NAME WHAT CMD...: runs the client (a request every 10 ms, each on a new
# connection), runs CMD, waits until the client has been answered again for a while,
# stops it and prints what it saw; sets OUTAGE_MS and FAILED.
measure() {
	local name=$1 cmd=$2 out=$LAB_DIR/client-$1.out pid t0 line
	shift 2
	pid=$(lab_start client "$out" "$ROOT/bin/demo-client" -url "http://$VIP/" -interval 10ms -duration 60s)
	sleep 1 # a second of traffic before, so the gap is measured from steady state
	t0=$(date +%s%3N)
	"$cmd" "$@"
	wait_until 15 "the VIP to settle after $name" "${SETTLED[@]}"
	wait_until 15 "the client to be answered after $name" serving
	sleep 1
	lab_stop "$pid" TERM
	line=$(grep '^summary ' "$out") || fail "no summary from the client: $(cat "$out")"
	OUTAGE_MS=$(sed -E 's/.* outage_ms=([0-9]+).*/\1/' <<<"$line")
	FAILED=$(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$line")
	local sent ok tail from to
	sent=$(sed -E 's/.* sent=([0-9]+).*/\1/' <<<"$line")
	ok=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")
	tail=$(sed -E 's/.* tail_failed=([0-9]+).*/\1/' <<<"$line")
	from=$(sed -E 's/.* outage_from=([0-9]+).*/\1/' <<<"$line")
	to=$(sed -E 's/.* outage_to=([0-9]+).*/\1/' <<<"$line")
	((tail == 0)) || fail "$name: the last $tail requests failed"
	say "client: $sent requests, $ok answered, $FAILED failed; longest gap without an answer: ${OUTAGE_MS} ms"
	if ((OUTAGE_MS > 20 && from > 0)); then
		say "        (from $((from - t0)) ms to $((to - t0)) ms after the event; answered via $(grep '^via ' "$out" | cut -d' ' -f2-))"
	fi
}

step "Starting lbd on lb1 and lb2 (VRRP advert_interval $INTERVAL, VIP $VIP on both configs)"
LB1=$(lab_start lb1 "$LAB_DIR/lb1.log" "$ROOT/bin/lbd" run --config "$(lbd_config lb1 150)")
LB2=$(lab_start lb2 "$LAB_DIR/lb2.log" "$ROOT/bin/lbd" run --config "$(lbd_config lb2 100)")
wait_until 15 "lb1 to own $VIP" only lb1
wait_until 15 "$VIP to answer" serving
say "VIP owner: $(owner) (ip -o addr in each namespace)"
vip_status lb1 lb2

step "Spreading 300 requests (new connection each) over the backends"
out=$(lab_exec client "$ROOT/bin/demo-client" -url "http://$VIP/" -count 300 -interval 5ms)
grep -q '^summary .* failed=0 ' <<<"$out" || fail "requests failed: $out"
say "per backend: $(grep '^backends ' <<<"$out" | cut -d' ' -f2-)   (via $(grep '^via ' <<<"$out" | cut -d' ' -f2-))"

step "Killing the master: kill -9 lb1 (PID $LB1) while the client sends a request every 10 ms"
kill_lb1() { kill -KILL "$LB1"; DEAD=lb1; }
SETTLED=(only lb2)
measure kill kill_lb1
KILL_MS=$OUTAGE_MS KILL_FAILED=$FAILED
say "new owner: $(owner)   (the dead lb1's kernel keeps the address until its lbd starts again and"
say "           removes it; clients follow lb2's gratuitous ARP)"
vip_status lb2

step "lb1 returns (priority 150 > 100, preempt on): the VIP moves back"
start_lb1() {
	LB1=$(lab_start lb1 "$LAB_DIR/lb1-2.log" "$ROOT/bin/lbd" run --config "$LAB_DIR/lb1.yaml")
	DEAD=
}
SETTLED=(only lb1)
measure failback start_lb1
BACK_MS=$OUTAGE_MS BACK_FAILED=$FAILED
say "owner: $(owner)"
vip_status lb1 lb2

step "Summary"
say "requests spread over b1, b2, b3 through the VIP: yes"
say "master killed (SIGKILL):  outage ${KILL_MS} ms, ${KILL_FAILED} failed requests, VIP now on lb2"
say "old master back (preempt): outage ${BACK_MS} ms, ${BACK_FAILED} failed requests, VIP back on lb1"
say "(advert_interval $INTERVAL: the backup saw the dead lbd's liveness connection close and took over after"
say " its skew time; without that channel it waits for 3 intervals + skew of VRRP silence)"
say "demo finished in $((SECONDS - START)) s; removing the namespaces"
