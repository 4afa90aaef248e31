#!/usr/bin/env bash
# govulncheck.sh: scan lbd's packages and the modules they use for known vulnerabilities
# (golang.org/x/vuln's govulncheck, pinned below), for `make check`.
#
# Exit status: 0 when nothing affects lbd, or when the vulnerability database (or the
# module proxy that serves govulncheck itself) cannot be reached: then it says so and
# skips, so that a machine or CI runner without network access can still run the other
# checks. 1 when govulncheck reports a vulnerability that lbd's code reaches (its exit
# status 3) or fails for any other reason (a package that does not load, a bad flag).
#
#   GOVULNCHECK_VERSION  the version to run (v1.1.4)
#   GOVULNDB             the database (govulncheck's default, https://vuln.go.dev)
set -uo pipefail

GO=${GO:-go}
VERSION=${GOVULNCHECK_VERSION:-v1.1.4}
PKG=golang.org/x/vuln/cmd/govulncheck

# What a network failure looks like in Go's errors (DNS, connect, proxy, TLS, timeout).
network='dial tcp|no such host|proxyconnect|connection refused|network is unreachable|i/o timeout|TLS handshake|server misbehaving|Client.Timeout'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! GOBIN="$tmp" "$GO" install "$PKG@$VERSION" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	if grep -qE "$network" "$tmp/install.log"; then
		echo "govulncheck: module proxy unreachable (cannot fetch $PKG@$VERSION), skipped" >&2
		exit 0
	fi
	echo "govulncheck: cannot build $PKG@$VERSION" >&2
	exit 1
fi

args=()
if [ -n "${GOVULNDB:-}" ]; then
	args+=(-db "$GOVULNDB")
fi
"$tmp/govulncheck" "${args[@]}" ./... >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
case $rc in
0)
	exit 0
	;;
3)
	# govulncheck's "vulnerabilities found": code of lbd reaches a known vulnerability.
	echo "govulncheck: vulnerabilities found (above); update the module or Go release that fixes them" >&2
	exit 1
	;;
esac
# The default database is fetched lazily ("fetching vulnerabilities: Get ...: dial tcp
# ..."); another one (GOVULNDB) is probed first and reported as "unrecognized vulndb
# format" when the probe gets no answer.
if grep -qE "fetching vulnerabilities:.*($network)" "$tmp/out" ||
	{ [[ ${GOVULNDB:-} == http* ]] && grep -q "unrecognized vulndb format" "$tmp/out"; }; then
	echo "govulncheck: vulnerability database unreachable, skipped" >&2
	exit 0
fi
echo "govulncheck: failed (exit status $rc)" >&2
exit 1
