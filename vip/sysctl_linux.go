package vip

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Non-local bind.
//
// Only the master holds a virtual address, but the proxy on every node must be able to
// listen on it: a backup that becomes master should start forwarding the moment the
// address arrives, without re-binding its listeners (and a listener that binds only on
// the master would race with the takeover). Linux refuses bind(2) to an address the host
// does not have (EADDRNOTAVAIL) unless net.ipv4.ip_nonlocal_bind=1 (IPv4) or
// net.ipv6.ip_nonlocal_bind=1 (IPv6, Linux 4.3 and later). Both settings are per network
// namespace and affect only bind; they do not make the host answer for the address.
//
// EnableNonlocalBind sets both at start (it needs CAP_NET_ADMIN in the namespace, or root).
// The packaging also ships them as a sysctl drop-in, so a node started without the
// capability works as long as the drop-in was applied; EnableNonlocalBind reads the
// current value first and writes nothing when it is already 1. This is the same setting
// the keepalived + HAProxy documentation asks for by hand.

// nonlocalBindSysctls are the /proc/sys files EnableNonlocalBind sets to 1.
var nonlocalBindSysctls = []string{
	"/proc/sys/net/ipv4/ip_nonlocal_bind",
	"/proc/sys/net/ipv6/ip_nonlocal_bind",
}

// EnableNonlocalBind sets net.ipv4.ip_nonlocal_bind=1 and net.ipv6.ip_nonlocal_bind=1 in
// the calling thread's network namespace, so the proxy can bind a VIP the node does not
// hold (yet). A setting that is already 1 is left alone. A missing IPv6 setting (IPv6
// disabled, or a kernel before 4.3) is not an error. When writing is not permitted the
// error says which setting and how to set it; it matches fs.ErrPermission.
func EnableNonlocalBind() error {
	var errs []error
	for _, p := range nonlocalBindSysctls {
		err := setSysctl(p, "1")
		if err != nil && strings.Contains(p, "/ipv6/") && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// setSysctl writes value to the sysctl file path unless it already holds it.
func setSysctl(path, value string) error {
	name := sysctlName(path)
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if strings.TrimSpace(string(cur)) == value {
		return nil
	}
	err = os.WriteFile(path, []byte(value+"\n"), 0o644)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("setting %s=%s is not permitted (needs root or CAP_NET_ADMIN, and a writable /proc/sys); "+
			"set it with `sysctl -w %s=%s` or a file in /etc/sysctl.d: %w", name, value, name, value, notPermitted{err})
	default:
		return fmt.Errorf("setting %s=%s: %w", name, value, err)
	}
}

// notPermitted makes a read-only /proc/sys (EROFS, as in many containers) match
// fs.ErrPermission like EACCES and EPERM do.
type notPermitted struct{ err error }

func (e notPermitted) Error() string        { return e.err.Error() }
func (e notPermitted) Unwrap() error        { return e.err }
func (e notPermitted) Is(target error) bool { return target == fs.ErrPermission }

// sysctlName turns /proc/sys/net/ipv4/ip_nonlocal_bind into net.ipv4.ip_nonlocal_bind.
func sysctlName(path string) string {
	rest, ok := strings.CutPrefix(path, "/proc/sys/")
	if !ok {
		return path
	}
	return strings.ReplaceAll(rest, "/", ".")
}
