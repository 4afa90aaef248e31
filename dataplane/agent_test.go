package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// agentServer answers every connection with line and closes it.
func agentServer(t *testing.T, line string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(line))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

func askAgent(t *testing.T, ac AgentCheck, addr string) (string, error) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	fmt.Sscan(port, &ac.Port)
	b := Backend{Name: "b", Servers: []ServerConfig{{Address: "127.0.0.1:1"}}, Agent: &ac}
	cfg := Config{Backends: []Backend{b}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := cfg.Backends[0].Agent
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	r, err := newAgentQuery(a, "127.0.0.1:1")(ctx)
	return r.String(), err
}

func TestTCPAgent(t *testing.T) {
	for line, want := range map[string]string{
		"75%\n":          "75%",
		"up 50%\r\n":     "up 50%",
		"drain":          "drain", // no newline before the close
		"maint\nignored": "maint",
	} {
		got, err := askAgent(t, AgentCheck{}, agentServer(t, line))
		if err != nil || got != want {
			t.Errorf("agent says %q: got %q, %v; want %q", line, got, err, want)
		}
	}
	if _, err := askAgent(t, AgentCheck{}, agentServer(t, "")); err == nil {
		t.Error("an agent closing without a reply is no error")
	}
	if _, err := askAgent(t, AgentCheck{}, deadAddr(t)); err == nil || checkReason(err, time.Second) != "connect: connection refused" {
		t.Errorf("closed agent port: %v", err)
	}
}

func TestHTTPAgent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/weight":
			fmt.Fprint(w, `{"weight": 40, "other": "x"}`)
		case "/state":
			fmt.Fprint(w, `{"state": "drain 10%"}`)
		case "/bad":
			fmt.Fprint(w, `{"weight": 140}`)
		case "/object":
			fmt.Fprint(w, `{"weight": {"a": 1}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tests := []struct {
		ac   AgentCheck
		want string // report, or "error: " + part of the error
	}{
		{AgentCheck{Type: CheckHTTP, Path: "/weight"}, "40%"},
		{AgentCheck{Type: CheckHTTP, Path: "/state", JSONField: "state"}, "drain 10%"},
		{AgentCheck{Type: CheckHTTP, Path: "/weight", JSONField: "missing"}, `error: the JSON answer has no field "missing"`},
		{AgentCheck{Type: CheckHTTP, Path: "/bad"}, "error: field \"weight\" is 140"},
		{AgentCheck{Type: CheckHTTP, Path: "/object"}, "error: field \"weight\" is neither"},
		{AgentCheck{Type: CheckHTTP, Path: "/nope"}, "error: http status 404"},
	}
	for _, tc := range tests {
		got, err := askAgent(t, tc.ac, addr)
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.ac.Path, got, tc.want)
		}
	}
}
