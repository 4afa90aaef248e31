#!/usr/bin/env bash
# scripts/failover-bench.sh — `make bench-failover`: how long a client loses the service
# when the master of two nodes dies, loses its link or stops, for keepalived + HAProxy and
# for lbd, measured the same way on the same machine in the same run.
#
# As root (network namespaces; scripts/lab.sh). Installs keepalived and haproxy with
# apt-get when missing. Needs bin/lbd and bin/lbctl (make build); builds
# scripts/demo-backend and scripts/demo-client. Lab (198.18.0.0/24 only):
#
#   lb1 198.18.0.1 (priority 150)   lb2 198.18.0.2 (priority 100)   VIP 198.18.0.100:80
#   b1 198.18.0.11  b2 198.18.0.12  b3 198.18.0.13 (HTTP :8080)     client 198.18.0.200
#
# Systems (columns):
#   ka-v2   keepalived (vrrp_version 2, advert_int 1) + HAProxy on each node
#   ka-v3   keepalived (vrrp_version 3, advert_int 0.1) + HAProxy on each node
#   lbd-1s  lbd, advert_interval 1s (the default)
#   lbd-100 lbd, advert_interval 100ms
# HAProxy binds the VIP on both nodes (net.ipv4.ip_nonlocal_bind=1), mode http,
# round robin over the three backends.
#
# Scenarios (rows), each on freshly started nodes once lb1 is master and serving:
#   kill      every process of lb1 is frozen (SIGSTOP) and then SIGKILLed (keepalived's
#             parent and VRRP child and haproxy; or lbd): the node's software dies at
#             once without sending anything, its kernel lives on (and keeps the VIP)
#   linkdown  lb1's bridge port goes down (lab_link: a pulled cable)
#   stop      SIGTERM to lb1's processes (systemctl stop)
#   move      lbctl vip move web on lb1 (planned move; lbd only)
#
# The client (scripts/demo-client) sends a request every 10 ms on a new connection from
# 1 s before the event until lb2 holds the VIP and answers, plus 1 s. Outage = the
# longest gap between two answered requests; failed = requests that got no answer. Each
# scenario is bounded (FAILOVER_WAIT seconds per wait); the whole run takes about
# 3 minutes. The lab is removed at the end, also on Ctrl-C or failure.
#
# Environment: FAILOVER_SYSTEMS (default "ka-v2 ka-v3 lbd-1s lbd-100"),
# FAILOVER_SCENARIOS (default "kill linkdown stop move"), FAILOVER_WAIT (15),
# FAILOVER_KEEP_LOGS=DIR copies the logs there. Prints a Markdown table at the end.

set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lab.sh
source scripts/lab.sh

SYSTEMS=${FAILOVER_SYSTEMS:-ka-v2 ka-v3 lbd-1s lbd-100}
SCENARIOS=${FAILOVER_SCENARIOS:-kill linkdown stop move}
WAIT=${FAILOVER_WAIT:-15}
VIP=198.18.0.100
START=$SECONDS

die() { echo "failover-bench: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

[[ $EUID -eq 0 ]] || die "needs root (network namespaces): sudo make bench-failover"
[[ -x bin/lbd && -x bin/lbctl ]] || die "bin/lbd or bin/lbctl missing: make build"
if ! command -v keepalived >/dev/null || ! command -v haproxy >/dev/null; then
	command -v apt-get >/dev/null || die "please install keepalived and haproxy"
	log "installing keepalived haproxy"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq keepalived haproxy >/dev/null
	# The packages start system services on the host; this benchmark does not use them.
	systemctl disable --now keepalived haproxy >/dev/null 2>&1 || true
fi
KEEPALIVED=$(command -v keepalived)
HAPROXY=$(command -v haproxy)
export PATH=/usr/local/go/bin:$PATH
CGO_ENABLED=0 go build -o bin/demo-backend ./scripts/demo-backend
CGO_ENABLED=0 go build -o bin/demo-client ./scripts/demo-client

lab_on_exit() {
	if [[ -n ${FAILOVER_KEEP_LOGS:-} && -n ${LAB_DIR:-} ]]; then
		mkdir -p "$FAILOVER_KEEP_LOGS" && cp "$LAB_DIR"/*.log "$LAB_DIR"/*.out "$FAILOVER_KEEP_LOGS"/ 2>/dev/null
	fi
	return 0
}
lab_init "lbdfo-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
lab_node lb1 1 >/dev/null
lab_node lb2 2 >/dev/null
for i in 1 2 3; do lab_node "b$i" "1$i" >/dev/null; done
lab_node client 200 >/dev/null
for n in lb1 lb2; do lab_exec "$n" sysctl -qw net.ipv4.ip_nonlocal_bind=1; done
for i in 1 2 3; do
	lab_start "b$i" "$LAB_DIR/b$i.log" "$ROOT/bin/demo-backend" -name "b$i" -listen "198.18.0.1$i:8080" >/dev/null
done

prio() { if [[ $1 == lb1 ]]; then echo 150; else echo 100; fi; }

haproxy_config() {
	cat >"$LAB_DIR/haproxy.cfg" <<-EOF
		global
		    maxconn 4096
		defaults
		    mode http
		    timeout connect 1s
		    timeout client 10s
		    timeout server 10s
		frontend web
		    bind $VIP:80
		    default_backend app
		backend app
		    balance roundrobin
		    server b1 198.18.0.11:8080
		    server b2 198.18.0.12:8080
		    server b3 198.18.0.13:8080
	EOF
}

# keepalived_config NODE VERSION ADVERT_INT
keepalived_config() {
	cat >"$LAB_DIR/$1-ka.conf" <<-EOF
		global_defs {
		    router_id $1
		    vrrp_version $2
		}
		vrrp_instance web {
		    state BACKUP
		    interface eth0
		    virtual_router_id 51
		    priority $(prio "$1")
		    advert_int $3
		    virtual_ipaddress {
		        $VIP/24 dev eth0
		    }
		}
	EOF
}

# lbd_config NODE INTERVAL
lbd_config() {
	lab_lbd_config "$1" "$(prio "$1")" "$2" "$VIP" "$ROOT/bin/lbd" >/dev/null ||
		die "bin/lbd validate --config $LAB_DIR/$1.yaml"
}

# start_node SYSTEM NODE: starts the system's processes on NODE.
start_node() {
	local sys=$1 n=$2 tag=$3
	case $sys in
	ka-*)
		local ver=2 int=1
		[[ $sys == ka-v3 ]] && ver=3 int=0.1
		keepalived_config "$n" "$ver" "$int"
		lab_start "$n" "$LAB_DIR/$tag-$n-haproxy.log" "$HAPROXY" -db -f "$LAB_DIR/haproxy.cfg" >/dev/null
		lab_start "$n" "$LAB_DIR/$tag-$n-keepalived.log" "$KEEPALIVED" -n -l -D -P -f "$LAB_DIR/$n-ka.conf" \
			-p "$LAB_DIR/$n-ka.pid" -r "$LAB_DIR/$n-ka-vrrp.pid" -c "$LAB_DIR/$n-ka-chk.pid" >/dev/null
		;;
	lbd-*)
		local int=1s
		[[ $sys == lbd-100 ]] && int=100ms
		lbd_config "$n" "$int"
		lab_start "$n" "$LAB_DIR/$tag-$n-lbd.log" "$ROOT/bin/lbd" run --config "$LAB_DIR/$n.yaml" >/dev/null
		;;
	esac
}

# node_pids NODE: every process in NODE's namespace (only our own run there).
node_pids() { ip netns pids "$(lab_ns "$1")" 2>/dev/null; }

# reset_nodes: nothing runs on lb1 and lb2, no VIP on them, links up, client ARP flushed.
reset_nodes() {
	local n pid
	for n in lb1 lb2; do
		lab_link "$n" up
		for pid in $(node_pids "$n"); do kill -s CONT "$pid" 2>/dev/null || true; lab_stop "$pid" TERM; done
		lab_exec "$n" ip addr del "$VIP/24" dev eth0 2>/dev/null || true
	done
	lab_exec client ip neigh flush all
}

owns() { lab_exec "$1" ip -o -4 addr show dev eth0 | grep -q " $VIP/"; }
serving() { lab_exec client "$ROOT/bin/demo-client" -url "http://$VIP/" -count 1 -timeout 500ms 2>/dev/null | grep -q '^summary .* ok=1 '; }
served_by() { lab_exec client "$ROOT/bin/demo-client" -url "http://$VIP/" -count 1 -timeout 500ms 2>/dev/null | grep -q "^via $1="; }
lb1_ready() { owns lb1 && ! owns lb2 && served_by 198.18.0.1; }
lb2_ready() { owns lb2 && served_by 198.18.0.2; }

# wait_for SECONDS CMD...: polls CMD every 50 ms; false after SECONDS.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# event SYSTEM SCENARIO
event() {
	local sys=$1 sc=$2 pids
	# Process substitution, not a pipe: kill runs here, all PIDs in one kill(1).
	mapfile -t pids < <(node_pids lb1)
	((${#pids[@]})) || { log "nothing runs on lb1"; return 0; }
	case $sc in
	# SIGSTOP first: keepalived's VRRP child has PR_SET_PDEATHSIG=SIGTERM, so when its
	# parent dies first it would still send priority 0 (a graceful stop, not a crash).
	# Frozen processes run no handler; SIGKILL then ends them all.
	kill) kill -s STOP "${pids[@]}" && kill -s KILL "${pids[@]}" ;;
	linkdown) lab_link lb1 down ;;
	stop) kill -s TERM "${pids[@]}" ;;
	move) "$ROOT/bin/lbctl" --socket "$LAB_DIR/lb1.sock" vip move web >/dev/null ;;
	esac
}

declare -A RESULT
# run SYSTEM SCENARIO: one measurement; sets RESULT[SYSTEM,SCENARIO].
run() {
	local sys=$1 sc=$2 tag=$1-$2 out pid line outage failed
	out=$LAB_DIR/$tag-client.out
	reset_nodes
	start_node "$sys" lb1 "$tag"
	start_node "$sys" lb2 "$tag"
	if ! wait_for "$WAIT" lb1_ready; then
		RESULT[$sys,$sc]="no master"
		log "$tag: lb1 did not become master and serve within ${WAIT}s"
		return
	fi
	pid=$(lab_start client "$out" "$ROOT/bin/demo-client" -url "http://$VIP/" -interval 10ms -duration 45s)
	sleep 1
	event "$sys" "$sc"
	local settled=1
	wait_for "$WAIT" lb2_ready || settled=0
	sleep 1
	lab_stop "$pid" TERM
	line=$(grep '^summary ' "$out") || { RESULT[$sys,$sc]="no client summary"; return; }
	outage=$(sed -E 's/.* outage_ms=([0-9]+).*/\1/' <<<"$line")
	failed=$(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$line")
	if ((!settled)) || [[ $line != *" tail_failed=0"* ]]; then
		RESULT[$sys,$sc]="not back in ${WAIT} s"
	else
		RESULT[$sys,$sc]="$outage ms, $failed failed"
	fi
	log "$tag: ${RESULT[$sys,$sc]}   ($line)"
}

haproxy_config
log "lab $LAB_PREFIX; systems: $SYSTEMS; scenarios: $SCENARIOS"
for sc in $SCENARIOS; do
	for sys in $SYSTEMS; do
		if [[ $sc == move && $sys == ka-* ]]; then
			RESULT[$sys,$sc]="—"
			continue
		fi
		run "$sys" "$sc"
	done
done
reset_nodes

declare -A ROW=([kill]="master killed (SIGKILL, all its processes)" [linkdown]="master link down"
	[stop]="graceful stop (SIGTERM)" [move]="planned move (\`lbctl vip move\`)")
declare -A COL=([ka-v2]="keepalived v2, 1 s + HAProxy" [ka-v3]="keepalived v3, 0.1 s + HAProxy"
	[lbd-1s]="lbd, 1 s (default)" [lbd-100]="lbd, 100 ms")
echo
echo "Failover, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); outage (longest gap between answers), failed requests:"
echo
hdr="| scenario |" sep="| --- |"
for sys in $SYSTEMS; do hdr+=" ${COL[$sys]} |"; sep+=" --- |"; done
echo "$hdr"
echo "$sep"
for sc in $SCENARIOS; do
	row="| ${ROW[$sc]} |"
	for sys in $SYSTEMS; do row+=" ${RESULT[$sys,$sc]:-—} |"; done
	echo "$row"
done
echo
echo "($((SECONDS - START)) s; $("$KEEPALIVED" --version 2>&1 | head -1 | cut -d' ' -f1-2), HAProxy $("$HAPROXY" -v | head -1 | cut -d' ' -f3))"
