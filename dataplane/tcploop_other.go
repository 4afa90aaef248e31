//go:build !linux

package dataplane

// relay moves the bytes of c's session, connected by serve, until it ends. Without the
// Linux event loops (tcploop_linux.go), a tcpPipe does it with two goroutines.
func (f *tcpFrontend) relay(c *tcpConn, g *frontendGen) {
	newTCPPipe(c, g.cfg.Timeouts.ClientIdle).run(g.m.bytesIn, g.m.bytesOut)
}
