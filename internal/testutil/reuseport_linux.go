package testutil

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// ReusePortListener listens on a free loopback port with SO_REUSEPORT and holds it until
// the test ends: a listener with reuse_port can share its port, one without cannot bind
// it, which is how tests make a bind fail late.
func ReusePortListener(t testing.TB) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		})
		return errors.Join(err, serr)
	}}
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// soReusePort is SO_REUSEPORT on Linux, which package syscall does not name.
const soReusePort = 0xf
