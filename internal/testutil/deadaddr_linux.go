package testutil

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// DeadTCPAddr returns a loopback address where a connection is refused, and stays so
// until t ends. Listening on port 0 and closing the listener does not do: another test,
// or another go test process, may be given the port a moment later and answer on it.
// Here a socket holds the port bound without listening: a SYN to it draws a reset
// (connection refused), and since the socket has no SO_REUSEADDR no other socket can
// bind the port, nor is it given out as an ephemeral port, while t runs.
func DeadTCPAddr(t testing.TB) string {
	t.Helper()
	return deadAddr(t, syscall.SOCK_STREAM)
}

// DeadUDPAddr returns a loopback address where datagrams draw ICMP port unreachable,
// and stays so until t ends: a UDP socket holds the port, connected to itself, so the
// kernel delivers it no datagram from anyone else and answers them as it answers a
// closed port.
func DeadUDPAddr(t testing.TB) string {
	t.Helper()
	return deadAddr(t, syscall.SOCK_DGRAM)
}

func deadAddr(t testing.TB, typ int) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, typ|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("dead address: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("dead address: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("dead address: getsockname: %v", err)
	}
	if typ == syscall.SOCK_DGRAM {
		if err := syscall.Connect(fd, sa); err != nil {
			t.Fatalf("dead address: connect: %v", err)
		}
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
