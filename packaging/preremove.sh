#!/bin/sh
# lbd package: before removal (not before an upgrade). Stops lbd; the unit's ExecStopPost
# releases this node's VIPs.
set -e

case "$1" in
upgrade | 1) exit 0 ;; # deb: "upgrade"; rpm: $1 is the number of versions left (1 on upgrade)
esac
if [ -d /run/systemd/system ]; then
	systemctl stop lbd.service >/dev/null 2>&1 || true
	systemctl disable lbd.service >/dev/null 2>&1 || true
fi
exit 0
