//go:build !linux

package dataplane

import "net"

// toLoop is the loop engine's entry (httploop_linux.go); without event loops every
// connection is served by the fasthttp engine.
func (f *httpFrontend) toLoop(c *net.TCPConn, hg *httpGen, pc *proxiedConn) bool { return false }

// loopConns are the connections of a frontend on the loops: none here.
type loopConns struct{}

func (lc *loopConns) drain(ctx interface{ Done() <-chan struct{} }) {}

// loopable: no generation is served on loops here.
func loopable(g *frontendGen) (why handover, ok bool) { return handoverEngine, false }

// connQuiet: no check without the loops' system calls.
func connQuiet(c net.Conn) bool { return true }

// closeLoopIdle: no event loop holds connections here.
func (p *serverPool) closeLoopIdle(loops *eventLoops) {}
