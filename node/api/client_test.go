package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"lbd/internal/testutil"
)

// unixServer serves h on a unix socket in a temp dir and returns the socket's path.
func unixServer(t *testing.T, h http.Handler) string { return testutil.UnixServer(t, h) }

func answer(code int, contentType, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(code)
		io.WriteString(w, body)
	})
}

// TestClientErrors: a refusal comes back with the API's own message, whatever the call.
func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		h    http.Handler
		call func(*Client) error
		code int
		want string
	}{
		{
			name: "api message",
			h:    answer(404, "application/json", `{"error": "backend \"app\" has no server named \"s9\""}`),
			call: func(c *Client) error { _, err := c.SetServer(ctx, "app", "s9", ServerChange{}); return err },
			code: 404, want: `backend "app" has no server named "s9"`,
		},
		{
			name: "no api message",
			h:    answer(404, "text/plain", "404 page not found\n"),
			call: func(c *Client) error { _, err := c.StickyList(ctx, "app"); return err },
			code: 404, want: "admin api: GET /v1/sticky/app: 404 Not Found: 404 page not found",
		},
		{
			name: "refused config",
			h:    answer(422, "application/json", `{"ok": false, "errors": ["frontends[0].bind: bad", "backends[0]: worse"]}`),
			call: func(c *Client) error { _, err := c.Reload(ctx); return err },
			code: 422, want: "config refused, the old config keeps serving:\nfrontends[0].bind: bad\nbackends[0]: worse",
		},
		{
			name: "reload forbidden",
			h:    answer(403, "application/json", `{"error": "changes are accepted on the admin unix socket only"}`),
			call: func(c *Client) error { _, err := c.Reload(ctx); return err },
			code: 403, want: "changes are accepted on the admin unix socket only",
		},
		{
			name: "metrics status",
			h:    answer(503, "text/plain", "busy"),
			call: func(c *Client) error { _, err := c.Metrics(ctx); return err },
			code: 503, want: "admin api: GET /metrics: 503 Service Unavailable: busy",
		},
		{
			name: "move refused",
			h:    answer(409, "application/json", `{"error": "vrrp instance web is not master"}`),
			call: func(c *Client) error { _, err := c.MoveVIP(ctx, "web"); return err },
			code: 409, want: "vrrp instance web is not master",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(NewClient(unixServer(t, tc.h)))
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want an *api.Error", err, err)
			}
			if ae.StatusCode != tc.code || err.Error() != tc.want {
				t.Errorf("error %d %q, want %d %q", ae.StatusCode, err.Error(), tc.code, tc.want)
			}
		})
	}
}

// TestClientUnreachable: no socket, a socket nobody listens on, and an unreadable
// socket each say that lbd cannot be reached, not how the dial failed.
func TestClientUnreachable(t *testing.T) {
	dir := t.TempDir()
	absent := filepath.Join(dir, "absent.sock")
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	for _, sock := range []string{absent, stale} {
		_, err := NewClient(sock).Status(context.Background())
		var ue *UnreachableError
		want := "cannot reach lbd at " + sock + ": is lbd running? systemctl status lbd"
		if !errors.As(err, &ue) || err.Error() != want {
			t.Errorf("Status over %s: %v, want %q", filepath.Base(sock), err, want)
		}
	}

	// Root opens any socket: the message, then the real refusal when not root.
	denied := &UnreachableError{Target: "/run/lbd/lbd.sock", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EACCES)}}
	if want := "cannot reach lbd at /run/lbd/lbd.sock: permission denied (the admin socket is for root and group lbd)"; denied.Error() != want {
		t.Errorf("permission denied: %q, want %q", denied.Error(), want)
	}
	if os.Geteuid() == 0 {
		return
	}
	locked := unixServer(t, answer(200, "application/json", "{}"))
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(locked).Status(context.Background())
	if want := "cannot reach lbd at " + locked + ": permission denied (the admin socket is for root and group lbd)"; err == nil || err.Error() != want {
		t.Errorf("Status over a socket without permission: %v, want %q", err, want)
	}
}

// TestClientDecodes: a 200 answer reaches the caller decoded; one that is not JSON is
// an error naming the request.
func TestClientDecodes(t *testing.T) {
	sock := unixServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			io.WriteString(w, `{"node": "lb1", "dataplane": {"frontends": [], "backends": [{"name": "app", "balance": "random", "servers": []}]}}`)
		case "/v1/vips":
			io.WriteString(w, `not json`)
		case "/metrics":
			io.WriteString(w, "lbd_up 1\n")
		}
	}))
	c := NewClient(sock)
	st, err := c.Status(context.Background())
	if err != nil || st.Node != "lb1" || len(st.Dataplane.Backends) != 1 || st.Dataplane.Backends[0].Name != "app" {
		t.Errorf("Status: %+v, %v", st, err)
	}
	if _, err := c.VIPs(context.Background()); err == nil || err.Error() != "admin api: bad answer to GET /v1/vips: invalid character 'o' in literal null (expecting 'u')" {
		t.Errorf("VIPs of a bad answer: %v", err)
	}
	if m, err := c.Metrics(context.Background()); err != nil || m != "lbd_up 1\n" {
		t.Errorf("Metrics: %q, %v", m, err)
	}
}

// TestClientToken: WithToken sends the bearer token with every request; the client
// without it sends none.
func TestClientToken(t *testing.T) {
	var got []string
	sock := unixServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		io.WriteString(w, "ok\n")
	}))
	c := NewClient(sock)
	ctx := context.Background()
	if _, err := c.WithToken("s3cr3t-s3cr3t-s3cr3t").Metrics(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Metrics(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "Bearer s3cr3t-s3cr3t-s3cr3t" || got[1] != "" {
		t.Errorf("Authorization headers = %q, want the token, then none", got)
	}
}
