#!/bin/sh
# lbd package: after install or upgrade. Does not enable or start lbd (see docs/install.md).
set -e

if ! getent group lbd >/dev/null 2>&1; then
	if command -v groupadd >/dev/null 2>&1; then
		groupadd --system lbd || true
	elif command -v addgroup >/dev/null 2>&1; then
		addgroup --system lbd || true
	fi
fi
if getent group lbd >/dev/null 2>&1; then
	chgrp lbd /etc/lbd /etc/lbd/lbd.yaml 2>/dev/null || true
fi

# net.ipv4/ipv6.ip_nonlocal_bind (a container may refuse: lbd sets them itself at start).
if command -v sysctl >/dev/null 2>&1; then
	sysctl -q -p /usr/lib/sysctl.d/90-lbd.conf >/dev/null 2>&1 || true
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running lbd on the new binary (its VIPs move during the restart
	# unless another node holds them; drain first, see docs/install.md).
	if systemctl is-active --quiet lbd.service 2>/dev/null; then
		systemctl try-restart lbd.service || true
	fi
fi
exit 0
