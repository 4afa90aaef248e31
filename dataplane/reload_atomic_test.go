package dataplane

import (
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"lbd/internal/testutil"
)

// TestRefusedReloadChangesNothing checks that a reload refused by a step late in its
// build (or by a listener that cannot bind) leaves the running servers, their backend's
// queue and its sticky table exactly as they were, and traffic flowing.
func TestRefusedReloadChangesNothing(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	dir := t.TempDir()

	for _, tc := range []struct {
		name string
		// fail adds to cfg what makes the reload fail.
		fail func(cfg *Config)
	}{
		{"listener address in use", func(cfg *Config) {
			cfg.Frontends = append(cfg.Frontends, Frontend{Name: "busy", Mode: ModeTCP, Bind: held.Addr().String(), Backend: "b"})
		}},
		{"frontend certificate missing", func(cfg *Config) {
			cfg.Frontends = append(cfg.Frontends, Frontend{Name: "https", Mode: ModeHTTP, Bind: "127.0.0.2:0", Backend: "b",
				TLS: &FrontendTLS{Certificates: []TLSCertificate{{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: filepath.Join(dir, "nope.key")}}}})
		}},
		{"later backend's ca file missing", func(cfg *Config) {
			cfg.Backends = append(cfg.Backends, Backend{Name: "tls", Servers: []ServerConfig{{Name: "x", Address: "127.0.0.1:1"}},
				TLS: &BackendTLS{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tcpServer(t, func(c *net.TCPConn) { tcpEcho(c) })
			running := l4Config(ModeTCP, BalanceRoundRobin, srv)
			running.Backends[0].Queue = QueueConfig{Size: 10, Timeout: time.Second}
			running.Backends[0].Persistence = &Persistence{Type: PersistTable, Table: PersistenceTable{Size: 100}}
			d := l4Dataplane(t, running)
			tcpRoundTrip(t, tcpDial(t, d), "before")

			b := d.snapshot().byName["b"]
			s, q, table := b.byName["s0"], b.queue, b.persist.table
			for _, k := range []string{"k1", "k2", "k3"} {
				table.Set([]byte(k), "s0")
			}
			entries := table.Len()

			// The refused config changes everything build used to change in place: the
			// server's weight, state and maxconn, the queue's size and timeout, the
			// sticky table's size (which would evict entries).
			next := l4Config(ModeTCP, BalanceRoundRobin, srv)
			w := 7
			next.Backends[0].Servers[0].Weight = &w
			next.Backends[0].Servers[0].State = StateDisabled
			next.Backends[0].Servers[0].MaxConn = 3
			next.Backends[0].Queue = QueueConfig{Size: 2, Timeout: 2 * time.Second}
			next.Backends[0].Persistence = &Persistence{Type: PersistTable, Table: PersistenceTable{Size: 1}}
			tc.fail(&next)
			if err := d.Apply(next); err == nil {
				t.Fatal("Apply accepted a config that should fail")
			} else {
				t.Logf("refused: %v", err)
			}

			if d.snapshot().byName["b"] != b {
				t.Fatal("the refused config's backend is running")
			}
			if got := s.ConfiguredWeight(); got != DefaultServerWeight {
				t.Errorf("weight = %d, want %d", got, DefaultServerWeight)
			}
			if got := s.State(); got != Enabled {
				t.Errorf("state = %v, want enabled", got)
			}
			if got := s.MaxConn(); got != 0 {
				t.Errorf("maxconn = %d, want 0", got)
			}
			if got := s.queue.Load(); got != q {
				t.Errorf("server's queue = %p, want the running backend's %p", got, q)
			}
			q.mu.Lock()
			size, timeout := q.size, q.timeout
			q.mu.Unlock()
			if size != 10 || timeout != time.Second {
				t.Errorf("queue size, timeout = %d, %v, want 10, 1s", size, timeout)
			}
			if got := table.Len(); got != entries {
				t.Errorf("sticky entries = %d, want %d (the refused size of 1 evicted some)", got, entries)
			}
			tcpRoundTrip(t, tcpDial(t, d), "after")

			// The same change without the failing part applies.
			next = l4Config(ModeTCP, BalanceRoundRobin, srv)
			next.Backends[0].Servers[0].Weight = &w
			next.Backends[0].Servers[0].MaxConn = 3
			next.Backends[0].Queue = QueueConfig{Size: 2, Timeout: 2 * time.Second}
			next.Backends[0].Persistence = &Persistence{Type: PersistTable, Table: PersistenceTable{Size: 1}}
			if err := d.Apply(next); err != nil {
				t.Fatal(err)
			}
			if s.ConfiguredWeight() != w || s.MaxConn() != 3 || table.Len() != 1 {
				t.Errorf("after the good reload: weight %d, maxconn %d, sticky entries %d; want %d, 3, 1",
					s.ConfiguredWeight(), s.MaxConn(), table.Len(), w)
			}
			q.mu.Lock()
			size = q.size
			q.mu.Unlock()
			if size != 2 {
				t.Errorf("after the good reload: queue size %d, want 2", size)
			}
			tcpRoundTrip(t, tcpDial(t, d), "reloaded")
		})
	}
}

// TestLateListenerFailureIsPartlyListening: a frontend whose address the old listener of
// another kind held is bound only after that one closes; when that bind fails, the new
// config runs anyway, and Apply says so with ErrPartlyListening rather than with an error
// that reads as a refusal.
func TestLateListenerFailureIsPartlyListening(t *testing.T) {
	// The test holds a SO_REUSEPORT socket on the port; the old frontend (reuse_port)
	// shares it, the new one (without reuse_port) cannot.
	held := testutil.ReusePortListener(t)
	srv := tcpServer(t, func(c *net.TCPConn) { tcpEcho(c) })
	cfg := l4Config(ModeTCP, BalanceRoundRobin, srv)
	cfg.Frontends[0].Bind = held.Addr().String()
	cfg.Frontends[0].ReusePort = true
	d := l4Dataplane(t, cfg)

	next := l4Config(ModeTCP, BalanceRoundRobin, srv)
	next.Frontends[0].Bind = held.Addr().String()
	w := 9
	next.Backends[0].Servers[0].Weight = &w
	err := d.Apply(next)
	if !errors.Is(err, ErrPartlyListening) {
		t.Fatalf("Apply = %v, want an error wrapping ErrPartlyListening", err)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Apply = %v, want the bind's error in it", err)
	}
	if got := d.snapshot().cfg.Frontends[0].ReusePort; got {
		t.Error("the old config is running; the new one should")
	}
	if got := d.snapshot().byName["b"].byName["s0"].ConfiguredWeight(); got != w {
		t.Errorf("weight = %d, want the new config's %d", got, w)
	}
}
