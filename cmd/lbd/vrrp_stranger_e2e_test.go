package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// strangerAdverts is a python3 program that sends count VRRP version 3 advertisements
// for VRID vrid at priority prio, for the address vip, from this namespace's eth0 to
// 224.0.0.18 with TTL 255, one every 50ms: a host on the LAN that is not a router.
const strangerAdverts = `
import socket, struct, sys, time
vrid, prio, vip, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
src = sys.argv[5]
dst = "224.0.0.18"
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
msg = struct.pack("!BBBBHH", 0x31, vrid, prio, 1, 10, 0) + socket.inet_aton(vip)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(msg))
msg = msg[:6] + struct.pack("!H", csum(pseudo + msg)) + msg[8:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
for _ in range(count):
    s.sendto(msg, (dst, 0))
    time.sleep(0.05)
`

// TestVRRPStrangerAdverts: a host on the LAN (the client's namespace) advertises the
// instance's VRID at priority 254 for 2s. Without auth_key, on multicast, lbd cannot
// tell it from a router (as keepalived cannot): the nodes give the VIP up to it. With
// auth_key its adverts are dropped and lb1 keeps the VIP throughout.
func TestVRRPStrangerAdverts(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	for _, tt := range []struct {
		name    string
		authKey string
	}{
		{"without auth_key", ""},
		{"with auth_key", "e2e-vrrp-auth-key-0123456789"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := twoNodes(e2eOpts{authKey: tt.authKey}, t)
			done := make(chan string, 1)
			go func() {
				out, err := c.lab.bash(`lab_attach "$LAB_P" "$LAB_D" || exit 1
ip netns exec "$LAB_P-client" python3 -c "$1" 51 254 `+e2eVIP+` 40 198.18.0.200`, strangerAdverts)
				if err != nil {
					out += err.Error()
				}
				done <- out
			}()
			lost := false
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if owners := c.owners(e2eVIP); len(owners) != 1 || owners[0] != "lb1" {
					lost = true
				}
				select {
				case out := <-done:
					if strings.TrimSpace(out) != "" {
						t.Fatalf("stranger: %s", out)
					}
					deadline = time.Now() // stop once the stranger is done
				default:
				}
			}
			if tt.authKey == "" && !lost {
				t.Error("without auth_key the stranger's adverts did not move the VIP: the test does not reach the nodes")
			}
			if tt.authKey != "" && lost {
				t.Error("with auth_key the stranger's adverts moved the VIP away from lb1")
			}
			c.waitOwner(e2eVIP, "lb1")
		})
	}
}
