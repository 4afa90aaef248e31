#!/bin/bash
# Captures real keepalived VRRP advertisements into this directory (see README.md).
# Run as root from anywhere: bash vip/testdata/capture.sh
# Needs: apt-get install -y keepalived tcpdump iproute2
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
id=$RANDOM
nsk=lbdt-$id-k   # runs keepalived
nsc=lbdt-$id-c   # runs tcpdump
work=$(mktemp -d /tmp/lbdt-capture.XXXXXX)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$nsk" 2>/dev/null || true
	ip netns del "$nsc" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$nsk"
ip netns add "$nsc"
ip link add veth-k netns "$nsk" type veth peer name veth-c netns "$nsc"
for ns in "$nsk" "$nsc"; do ip -n "$ns" link set lo up; done
ip -n "$nsk" addr add 198.18.0.1/24 dev veth-k
ip -n "$nsk" addr add 2001:2::1/64 dev veth-k nodad
ip -n "$nsc" addr add 198.18.0.2/24 dev veth-c
ip -n "$nsc" addr add 2001:2::2/64 dev veth-c nodad
ip -n "$nsk" link set veth-k up
ip -n "$nsc" link set veth-c up
sleep 2 # link-local addresses (the IPv6 VRRP source) finish DAD

# run <name> <config body>: keepalived for a few seconds, tcpdump on the peer side.
run() {
	local name=$1 conf=$work/$1.conf
	cat >"$conf"
	ip netns exec "$nsc" tcpdump -i veth-c -U -w "$out/$name.pcap" 'ip proto 112 or ip6 proto 112' 2>"$work/$name.tcpdump" &
	local tpid=$!
	pids+=("$tpid")
	sleep 1
	ip netns exec "$nsk" keepalived -n -l -D -P -f "$conf" \
		-p "$work/$name.pid" -r "$work/$name.vrrp.pid" >"$work/$name.log" 2>&1 &
	local kpid=$!
	pids+=("$kpid")
	sleep ${HOLD:-10}
	kill "$kpid"; wait "$kpid" || true   # sends priority 0 adverts on the way out
	sleep 1
	kill "$tpid"; wait "$tpid" || true
	echo "== $name: $(cat "$work/$name.tcpdump" | tail -1)"
	grep -E 'Entering|checksum|version|Invalid' "$work/$name.log" | sed 's/^/   /' || true
}

run keepalived-v3 <<'CONF'
global_defs {
	router_id lbdt
	vrrp_version 3
}
vrrp_instance v4 {
	state MASTER
	interface veth-k
	virtual_router_id 51
	priority 100
	advert_int 0.5
	virtual_ipaddress {
		198.18.0.100/24
		198.18.0.101/24
	}
}
vrrp_instance v4unicast {
	state MASTER
	interface veth-k
	virtual_router_id 53
	priority 200
	advert_int 1
	unicast_src_ip 198.18.0.1
	unicast_peer {
		198.18.0.2
	}
	virtual_ipaddress {
		198.18.0.103/24
	}
}
vrrp_instance v6 {
	state MASTER
	interface veth-k
	virtual_router_id 52
	priority 150
	advert_int 1
	virtual_ipaddress {
		2001:2::100/64
		2001:2::101/64
	}
}
CONF

run keepalived-v2 <<'CONF'
global_defs {
	router_id lbdt
	vrrp_version 2
}
vrrp_instance v4pass {
	state MASTER
	interface veth-k
	virtual_router_id 61
	priority 100
	advert_int 1
	authentication {
		auth_type PASS
		auth_pass s3cret
	}
	virtual_ipaddress {
		198.18.0.110/24
	}
}
vrrp_instance v4none {
	state MASTER
	interface veth-k
	virtual_router_id 62
	priority 254
	advert_int 2
	virtual_ipaddress {
		198.18.0.111/24
		198.18.0.112/24
		198.18.0.113/24
	}
}
vrrp_instance v6 {
	state MASTER
	interface veth-k
	virtual_router_id 63
	priority 100
	advert_int 1
	virtual_ipaddress {
		2001:2::110/64
	}
}
CONF
keepalived --version 2>&1 | head -1
