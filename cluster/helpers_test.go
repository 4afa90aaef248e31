package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLog is a slog handler that sends records to t.Log (until the test ends) and keeps
// them for assertions.
type testLog struct {
	t     testing.TB
	attrs string
	*logState
}

type logState struct {
	mu    sync.Mutex
	ended bool
	lines []string
}

func newTestLog(t testing.TB) (*slog.Logger, *logState) {
	st := &logState{}
	t.Cleanup(func() {
		st.mu.Lock()
		st.ended = true
		st.mu.Unlock()
	})
	return slog.New(&testLog{t: t, logState: st}), st
}

func (h *testLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *testLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s", r.Level, r.Message, h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, b.String())
	if !h.ended {
		h.t.Log(b.String())
	}
	return nil
}

func (h *testLog) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	return &testLog{t: h.t, attrs: b.String(), logState: h.logState}
}

func (h *testLog) WithGroup(string) slog.Handler { return h }

// contains reports whether a logged line contains every one of parts.
func (s *logState) contains(parts ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, l := range s.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		return true
	}
	return false
}

// eventually polls cond every 5ms until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
