//go:build !linux

package dataplane

import (
	"log/slog"
	"time"
)

// eventLoops: no event loops here (loops_linux.go); tcp sessions and http connections
// run on goroutines.
type eventLoops struct{}

func newEventLoops(clk interface{ Now() time.Time }, log *slog.Logger) *eventLoops {
	return &eventLoops{}
}

func (*eventLoops) stop() {}
