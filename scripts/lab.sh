#!/usr/bin/env bash
# scripts/lab.sh — the network-namespace lab shared by `make demo`, the end-to-end tests
# and the failover benchmarks, so they cannot drift apart. Root only.
#
# Layout (the same as vip/netns_test.go):
#
#                <prefix>-br   bridge namespace: br0 (multicast snooping off)
#               /     |     \
#         v-NAME   v-NAME   ...       veth ports in the bridge namespace
#            |        |
#          eth0     eth0              <prefix>-NAME: one namespace per node, DAD off
#
# Addresses: node INDEX gets 198.18.0.INDEX/24 and 2001:2::INDEX(hex)/64 on eth0 (only
# 198.18.0.0/15 and 2001:2::/48 are ever used: RFC 2544 / RFC 5180 benchmarking space).
#
# As a library:                         As a command:
#   source scripts/lab.sh                 scripts/lab.sh down PREFIX   remove a lab
#   lab_init [PREFIX]                     scripts/lab.sh list          list lab namespaces
#   lab_node lb1 1                        scripts/lab.sh selftest      build, ping, tear down
#   lab_node client 100
#   pid=$(lab_start lb1 /tmp/lb1.log bin/lbd run -c lb1.yaml)
#   lab_exec client curl -s http://198.18.0.10/
#   lab_stop "$pid" KILL
#   (lab_down runs on exit, Ctrl-C and TERM)
#
# Functions:
#   lab_init [PREFIX]      new lab; PREFIX defaults to lbdt-<random>, must start with "lbd".
#                          Installs an EXIT/INT/TERM trap that runs lab_down; define
#                          lab_on_exit() to run your own cleanup first (it is called by
#                          lab_down). Sets LAB_PREFIX, LAB_BRIDGE, LAB_DIR (state dir).
#   lab_node NAME INDEX [ADDR/LEN...]
#                          namespace LAB_PREFIX-NAME, eth0 on the bridge, the addresses of
#                          INDEX (1-254) plus any extra ones. Prints the namespace name.
#   lab_ns NAME            prints the namespace name of node NAME.
#   lab_exec NAME CMD...   runs CMD inside node NAME (foreground).
#   lab_start NAME LOG CMD...
#                          starts CMD inside node NAME in the background, output to LOG;
#                          prints its PID and records it for lab_down.
#   lab_stop PID [SIG]     sends SIG (default TERM) to PID and waits for it to exit (up to
#                          5 s, then KILL).
#   lab_reach NAME ADDR    true when node NAME reaches ADDR (a TCP connection to port 9
#                          is accepted or refused within 2 s; needs no ping).
#   lab_link NAME up|down  sets node NAME's bridge port up or down (the node sees its
#                          carrier come and go, as with a pulled cable).
#   lab_down [PREFIX]      stops every recorded PID and any process left in the lab's
#                          namespaces (by PID), deletes every namespace PREFIX-*, removes
#                          LAB_DIR. Safe to call twice.
#   lab_attach PREFIX DIR  uses the lab PREFIX made earlier (state in DIR) from another
#                          shell, without a trap: the Go end-to-end tests run one bash per
#                          step (lab_init with LAB_NOTRAP=1 set installs no trap either).
#   lab_vrrp_block NAME    drops VRRP (IP protocol 112) arriving at node NAME (nftables).
#   lab_vrrp_unblock NAME  removes that rule again.

set -o pipefail

lab_die() { echo "lab.sh: $*" >&2; exit 1; }

lab_check_prefix() {
	[[ $1 =~ ^lbd[a-z0-9-]*$ && ${#1} -le 40 ]] || lab_die "bad lab prefix '$1' (want lbd[a-z0-9-]*)"
}

# shellcheck disable=SC2120 # PREFIX is optional
lab_init() {
	[[ $EUID -eq 0 ]] || lab_die "needs root (network namespaces)"
	command -v ip >/dev/null || lab_die "needs iproute2 (apt-get install iproute2)"
	LAB_PREFIX=${1:-lbdt-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}
	lab_check_prefix "$LAB_PREFIX"
	LAB_BRIDGE=$LAB_PREFIX-br
	LAB_DIR=$(mktemp -d "/tmp/$LAB_PREFIX.XXXXXX")
	: >"$LAB_DIR/pids"
	if [[ -z ${LAB_NOTRAP:-} ]]; then
		trap 'lab_down' EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	fi
	lab__ns_add "$LAB_BRIDGE"
	ip -n "$LAB_BRIDGE" link add br0 type bridge mcast_snooping 0 || return 1
	ip -n "$LAB_BRIDGE" link set br0 up
}

# lab__ns_add NS: a namespace with lo up and IPv6 DAD off (addresses usable at once).
lab__ns_add() {
	ip netns add "$1" || return 1
	ip -n "$1" link set lo up
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

lab_ns() { echo "$LAB_PREFIX-$1"; }

lab_node() {
	local name=$1 index=$2 ns
	shift 2 || lab_die "usage: lab_node NAME INDEX [ADDR/LEN...]"
	[[ $index =~ ^[0-9]+$ && $index -ge 1 && $index -le 254 ]] || lab_die "node index '$index' not in 1-254"
	[[ ${#name} -le 13 ]] || lab_die "node name '$name' longer than 13 characters"
	ns=$(lab_ns "$name")
	lab__ns_add "$ns" || return 1
	ip -n "$ns" link add eth0 type veth peer name "v-$name" netns "$LAB_BRIDGE" || return 1
	ip -n "$LAB_BRIDGE" link set "v-$name" master br0 up
	ip -n "$ns" addr add "198.18.0.$index/24" dev eth0
	ip -n "$ns" addr add "2001:2::$(printf %x "$index")/64" dev eth0 nodad
	local a
	for a in "$@"; do
		if [[ $a == *:* ]]; then
			ip -n "$ns" addr add "$a" dev eth0 nodad || return 1
		else
			ip -n "$ns" addr add "$a" dev eth0 || return 1
		fi
	done
	ip -n "$ns" link set eth0 up
	echo "$ns"
}

lab_exec() {
	local ns
	ns=$(lab_ns "$1")
	shift
	ip netns exec "$ns" "$@"
}

lab_start() {
	local ns log=$2
	ns=$(lab_ns "$1")
	shift 2
	# ip netns exec execs CMD after entering the namespace, so $! is CMD's PID.
	ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	echo "$!" >>"$LAB_DIR/pids"
	echo "$!"
}

lab_stop() {
	local pid=$1 sig=${2:-TERM} i
	kill -s "$sig" "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		[[ $sig == STOP ]] && return 0
		sleep 0.1
	done
	kill -s KILL "$pid" 2>/dev/null
	return 0
}

lab_link() {
	ip -n "$LAB_BRIDGE" link set "v-$1" "$2"
}

lab_down() {
	local prefix=${1:-$LAB_PREFIX} pid ns
	[[ -n $prefix ]] || return 0
	lab_check_prefix "$prefix"
	if declare -F lab_on_exit >/dev/null && [[ -z ${LAB__IN_EXIT:-} ]]; then
		LAB__IN_EXIT=1
		lab_on_exit || true
	fi
	if [[ $prefix == "${LAB_PREFIX:-}" && -f ${LAB_DIR:-}/pids ]]; then
		while read -r pid; do
			# Only a PID still inside one of our namespaces: never a reused PID.
			[[ $(ip netns identify "$pid" 2>/dev/null) == "$prefix-"* ]] || continue
			kill -s CONT "$pid" 2>/dev/null # a SIGSTOPped process cannot die of TERM
			lab_stop "$pid" TERM
		done <"$LAB_DIR/pids"
	fi
	for ns in $(ip netns list 2>/dev/null | awk -v p="$prefix-" 'index($1, p) == 1 {print $1}'); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -s KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
	if [[ $prefix == "${LAB_PREFIX:-}" && -n ${LAB_DIR:-} ]]; then
		rm -rf "$LAB_DIR"
		LAB_PREFIX='' LAB_DIR=
	fi
	return 0
}

lab_attach() {
	lab_check_prefix "$1"
	[[ -d $2 ]] || lab_die "lab state dir '$2' does not exist"
	LAB_PREFIX=$1 LAB_BRIDGE=$1-br LAB_DIR=$2
}

lab_vrrp_block() {
	command -v nft >/dev/null || lab_die "needs nftables (apt-get install nftables)"
	lab_exec "$1" nft -f - <<-'NFT'
		table inet lbdlab {
			chain input {
				type filter hook input priority filter; policy accept;
				ip protocol vrrp drop
				ip6 nexthdr vrrp drop
			}
		}
	NFT
}

lab_vrrp_unblock() {
	lab_exec "$1" nft delete table inet lbdlab
}

# lab_lbd_config NAME PRIORITY INTERVAL VIP LBD: writes $LAB_DIR/NAME.yaml, the config
# of an lbd node in the lab (VRRP instance "web", vrid 51, on eth0 at PRIORITY and
# INTERVAL; an http frontend on VIP:80 balancing over the backends b1-b3 at
# 198.18.0.11-13:8080), checks it with LBD validate and prints its path.
lab_lbd_config() {
	local f=$LAB_DIR/$1.yaml
	cat >"$f" <<-EOF
		node:
		  name: $1
		  state_dir: $LAB_DIR/$1-state
		  admin: {socket: $LAB_DIR/$1.sock, listen: ""}
		  vrrp:
		    interface: eth0
		    priority: $2
		vrrp:
		  instances:
		    - name: web
		      vrid: 51
		      advert_interval: $3
		      addresses: ["$4/24"]
		frontends:
		  - {name: web, mode: http, bind: "$4:80", backend: app}
		backends:
		  - name: app
		    balance: roundrobin
		    servers:
		      - {name: b1, address: "198.18.0.11:8080"}
		      - {name: b2, address: "198.18.0.12:8080"}
		      - {name: b3, address: "198.18.0.13:8080"}
	EOF
	"$5" validate --config "$f" >/dev/null || return 1
	echo "$f"
}

lab_reach() {
	local out
	out=$(lab_exec "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/9" 2>&1) && return 0
	[[ $out == *"Connection refused"* ]]
}

lab__selftest() {
	# shellcheck disable=SC2119 # a random prefix
	lab_init
	lab_node a 1 >/dev/null || lab_die "selftest: node a"
	lab_node b 2 >/dev/null || lab_die "selftest: node b"
	lab_reach a 198.18.0.2 || lab_die "selftest: 198.18.0.2 not reachable from a"
	lab_reach a 2001:2::2 || lab_die "selftest: 2001:2::2 not reachable from a"
	local pid
	pid=$(lab_start b /dev/null sleep 60)
	lab_link a down
	if lab_reach a 198.18.0.2; then lab_die "selftest: 198.18.0.2 reachable with a's port down"; fi
	lab_link a up
	local prefix=$LAB_PREFIX
	lab_down
	kill -0 "$pid" 2>/dev/null && lab_die "selftest: PID $pid survived lab_down"
	ip netns list | grep -q "^$prefix-" && lab_die "selftest: namespaces $prefix-* survived lab_down"
	echo "lab.sh selftest: ok ($prefix)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	case ${1:-} in
	down) [[ -n ${2:-} ]] || lab_die "usage: $0 down PREFIX"; lab_down "$2" ;;
	list) ip netns list | awk '$1 ~ /^lbd/ {print $1}' ;;
	selftest) lab__selftest ;;
	*) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 2 ;;
	esac
fi
