package dataplane

// Panics met while serving a connection. The fasthttp engine's handler and the event
// loops (httploop_linux.go, tcploop_linux.go) recover at each entry into a connection's
// code: a bug met by one connection closes that connection, is counted in
// lbd_panics_total{where} and logged, and the process, with the VIPs its node holds,
// carries on. Go's own net/http does the same per connection; HAProxy, in C, has no
// such net: a bug that crashes a worker stops it (and, in master-worker mode, the master
// with it unless "no exit-on-failure"), and the VIPs move away.

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Where a panic was recovered: the values of the where label.
const (
	panicFastHTTP    = "http"             // the fasthttp engine's request handler
	panicHTTPLoop    = "http_loop"        // a client connection on the loop engine
	panicHTTPLoopSrv = "http_loop_server" // a server connection on the loop engine
	panicTCPLoop     = "tcp_loop"         // a tcp session on an event loop
)

// panicWheres are the label values, each exported from the start at 0.
var panicWheres = []string{panicFastHTTP, panicHTTPLoop, panicHTTPLoopSrv, panicTCPLoop}

// panicMetric counts and logs recovered panics.
type panicMetric struct {
	total *prometheus.CounterVec // where
	// inject, when set (by tests), runs at each entry into a connection's code on
	// the loops with the where label: a test makes it panic.
	inject atomic.Pointer[func(where string)]

	// mu guards logged: the places whose first panic was logged with its stack. Later
	// ones are logged without it, so that a client that can trigger a bug at will
	// does not fill the log with stacks; the counter stays exact.
	mu     sync.Mutex
	logged map[string]bool
}

func newPanicMetric(reg prometheus.Registerer) *panicMetric {
	p := &panicMetric{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_panics_total",
			Help: "Panics recovered while serving a connection (a bug: the connection was closed, the process carried on), by where (http, http_loop, http_loop_server, tcp_loop).",
		}, []string{"where"}),
		logged: map[string]bool{},
	}
	for _, w := range panicWheres {
		p.total.WithLabelValues(w)
	}
	if reg != nil {
		reg.MustRegister(p.total)
	}
	return p
}

// recovered counts and logs the panic value r recovered at where; attrs describe the
// connection. A nil p (a session built without metrics, in tests) only logs.
func (p *panicMetric) recovered(log *slog.Logger, where string, r any, attrs ...any) {
	if log == nil {
		log = slog.Default()
	}
	first := true
	if p != nil {
		p.total.WithLabelValues(where).Inc()
		p.mu.Lock()
		first = !p.logged[where]
		p.logged[where] = true
		p.mu.Unlock()
	}
	attrs = append(attrs, "where", where, "panic", fmt.Sprint(r))
	if first {
		attrs = append(attrs, "stack", string(debug.Stack()))
	} else {
		attrs = append(attrs, "stack", "as at the first panic here")
	}
	log.Error("panic serving a connection: it is closed, lbd carries on (a bug: please report it)", attrs...)
}

// injected runs the test hook, if any.
func (p *panicMetric) injected(where string) {
	if p == nil {
		return
	}
	if f := p.inject.Load(); f != nil {
		(*f)(where)
	}
}

// closeAfterPanic runs close, and force if close panics too (the connection's state is
// what the first panic left); a panic in force is dropped.
func closeAfterPanic(close, force func()) {
	defer func() {
		if recover() != nil {
			func() {
				defer func() { _ = recover() }()
				force()
			}()
		}
	}()
	close()
}
