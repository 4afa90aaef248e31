package dataplane

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// ctlDataplane is a Dataplane with backend "be" of servers s0 (weight 2) and s1, and no
// frontends; its log lines are kept in the returned buffer.
func ctlDataplane(t *testing.T) (*Dataplane, func(Config) error, *ctlLog) {
	t.Helper()
	log := &ctlLog{}
	d := New(Options{Logger: slog.New(slog.NewTextHandler(log, nil))})
	apply := func(c Config) error { return d.Apply(c) }
	if err := apply(ctlConfig("enabled", 2)); err != nil {
		t.Fatal(err)
	}
	return d, apply, log
}

type ctlLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *ctlLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *ctlLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func ctlConfig(s0State string, s0Weight int) Config {
	return Config{Backends: []Backend{{Name: "be", Servers: []ServerConfig{
		{Name: "s0", Address: "127.0.0.1:1", State: s0State, Weight: &s0Weight},
		{Name: "s1", Address: "127.0.0.1:2"},
	}}}}
}

func ctlServer(d *Dataplane, name string) *Server { return d.snapshot().byName["be"].byName[name] }

func ctlPtr[T any](v T) *T { return &v }

func TestSetServer(t *testing.T) {
	d, _, log := ctlDataplane(t)
	s0 := ctlServer(d, "s0")
	if err := d.SetServer("be", "s0", ctlPtr(Drain), nil); err != nil {
		t.Fatal(err)
	}
	if s0.State() != Drain || s0.Available() || !s0.Serving() || s0.ConfiguredWeight() != 2 {
		t.Fatalf("after drain: state %v available %v serving %v weight %d", s0.State(), s0.Available(), s0.Serving(), s0.ConfiguredWeight())
	}
	// A drained server gets no new picks.
	b := d.snapshot().byName["be"]
	for range 20 {
		if s := b.pick(&Pick{}); s != ctlServer(d, "s1") {
			t.Fatalf("picked %v while s0 drains", s)
		}
	}
	if err := d.SetServer("be", "s0", ctlPtr(Disabled), ctlPtr(7)); err != nil {
		t.Fatal(err)
	}
	if s0.State() != Disabled || s0.Serving() || s0.ConfiguredWeight() != 7 {
		t.Fatalf("after disable: state %v serving %v weight %d", s0.State(), s0.Serving(), s0.ConfiguredWeight())
	}
	if err := d.SetServer("be", "s0", ctlPtr(Enabled), ctlPtr(2)); err != nil {
		t.Fatal(err)
	}
	if !s0.Available() {
		t.Fatal("enabled server not available")
	}
	if len(d.ctl.overrides) != 0 {
		t.Errorf("back to the file's values, yet overrides remain: %v", d.ctl.overrides)
	}
	if n := strings.Count(log.String(), "server changed at run time"); n != 3 {
		t.Errorf("%d log lines for 3 changes:\n%s", n, log)
	}
	// The same value again is no change, and is not logged.
	d.SetServer("be", "s0", ctlPtr(Enabled), nil)
	if n := strings.Count(log.String(), "server changed at run time"); n != 3 {
		t.Errorf("a no-op was logged:\n%s", log)
	}
	if st := d.Status(); st.Backends[0].Servers[0].State != "enabled" {
		t.Errorf("status: %+v", st.Backends[0].Servers[0])
	}
}

func TestSetServerErrors(t *testing.T) {
	d, _, _ := ctlDataplane(t)
	tests := []struct {
		backend, server string
		state           *ServerState
		weight          *int
		want            string
		notFound        bool
		field           string
	}{
		{"nope", "s0", ctlPtr(Drain), nil, `no backend named "nope"`, true, ""},
		{"be", "s9", ctlPtr(Drain), nil, `backend "be" has no server named "s9"`, true, ""},
		{"be", "s0", nil, ctlPtr(257), "weight: must be between 0 and 256, not 257", false, "weight"},
		{"be", "s0", nil, ctlPtr(-1), "weight: must be between 0 and 256, not -1", false, "weight"},
		{"be", "s0", ctlPtr(ServerState(9)), nil, "state: must be enabled, drain or disabled, not ServerState(9)", false, "state"},
	}
	for _, tc := range tests {
		err := d.SetServer(tc.backend, tc.server, tc.state, tc.weight)
		if err == nil || err.Error() != tc.want {
			t.Errorf("SetServer(%s, %s): %v, want %q", tc.backend, tc.server, err, tc.want)
			continue
		}
		var nf *NotFoundError
		var fe *FieldError
		if errors.As(err, &nf) != tc.notFound {
			t.Errorf("%v: NotFoundError %v, want %v", err, !tc.notFound, tc.notFound)
		}
		if tc.field != "" && (!errors.As(err, &fe) || fe.Path != tc.field) {
			t.Errorf("%v: not a *FieldError for %s", err, tc.field)
		}
	}
	if s := ctlServer(d, "s0"); s.State() != Enabled || s.ConfiguredWeight() != 2 {
		t.Errorf("a refused change changed the server: %v %d", s.State(), s.ConfiguredWeight())
	}
}

func TestSetServerAcrossReload(t *testing.T) {
	d, apply, log := ctlDataplane(t)
	if err := d.SetServer("be", "s0", ctlPtr(Drain), ctlPtr(5)); err != nil {
		t.Fatal(err)
	}
	// A reload that leaves s0 alone keeps the run-time values.
	if err := apply(ctlConfig("enabled", 2)); err != nil {
		t.Fatal(err)
	}
	s0 := ctlServer(d, "s0")
	if s0.State() != Drain || s0.ConfiguredWeight() != 5 {
		t.Fatalf("after an unrelated reload: %v weight %d, want drain 5", s0.State(), s0.ConfiguredWeight())
	}
	// The file changes s0's weight: the file wins for the weight, the drain stays.
	if err := apply(ctlConfig("enabled", 3)); err != nil {
		t.Fatal(err)
	}
	if s0.State() != Drain || s0.ConfiguredWeight() != 3 {
		t.Fatalf("after the file changed the weight: %v weight %d, want drain 3", s0.State(), s0.ConfiguredWeight())
	}
	if !strings.Contains(log.String(), "run-time weight of server dropped") {
		t.Errorf("dropping the weight override is not logged:\n%s", log)
	}
	// The file changes s0's state: the file wins.
	if err := apply(ctlConfig("disabled", 3)); err != nil {
		t.Fatal(err)
	}
	if s0.State() != Disabled {
		t.Fatalf("after the file changed the state: %v, want disabled", s0.State())
	}
	if len(d.ctl.overrides) != 0 {
		t.Errorf("overrides left: %v", d.ctl.overrides)
	}
	// A server removed from the file takes its override with it.
	d.SetServer("be", "s1", ctlPtr(Drain), nil)
	c := ctlConfig("disabled", 3)
	c.Backends[0].Servers = c.Backends[0].Servers[:1]
	if err := apply(c); err != nil {
		t.Fatal(err)
	}
	if len(d.ctl.overrides) != 0 {
		t.Errorf("override of a removed server kept: %v", d.ctl.overrides)
	}
	if err := apply(ctlConfig("disabled", 3)); err != nil {
		t.Fatal(err)
	}
	if s := ctlServer(d, "s1"); s.State() != Enabled {
		t.Errorf("server re-added after removal is %v, want the file's enabled", s.State())
	}
}

func TestSetServerWakesQueue(t *testing.T) {
	d := New(Options{})
	c := ctlConfig("enabled", 1)
	c.Backends[0].Servers[0].MaxConn = 1
	c.Backends[0].Servers[1].State = StateDisabled
	if err := d.Apply(c); err != nil {
		t.Fatal(err)
	}
	b := d.snapshot().byName["be"]
	if s, _ := b.acquire(&Pick{}, nil); s == nil || s.Name != "s0" {
		t.Fatalf("first request: %v", s)
	}
	ch := make(chan *Server, 1)
	go func() {
		s, _ := b.acquire(&Pick{}, nil)
		ch <- s
	}()
	ctlEventually(t, "the request to queue", func() bool { return b.queue.Len() == 1 })
	// Enabling s1 at run time lets the waiting request go there.
	if err := d.SetServer("be", "s1", ctlPtr(Enabled), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-ch:
		if s == nil || s.Name != "s1" {
			t.Fatalf("queued request went to %v, want s1", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("queued request not woken by SetServer")
	}
}
