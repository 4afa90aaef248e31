package node

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminListenLoopbackOnly: the TCP admin listener has no TLS, so an address that is
// not loopback is refused with an error naming the field.
func TestAdminListenLoopbackOnly(t *testing.T) {
	fakeHostname(t)
	for _, tc := range []struct {
		listen string
		ok     bool
	}{
		{"127.0.0.1:9180", true},
		{"127.0.0.2:9180", true},
		{"[::1]:9180", true},
		{"localhost:9180", true},
		{"0.0.0.0:9180", false},
		{":9180", false},
		{"[::]:9180", false},
		{"10.0.0.5:9180", false},
		{"lb-a.example.com:9180", false},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			_, err := Parse("lbd.yaml", []byte(fmt.Sprintf("node:\n  admin: {listen: %q}\n", tc.listen)))
			if tc.ok && err != nil {
				t.Errorf("listen %s refused: %v", tc.listen, err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "lbd.yaml:2: node.admin.listen: ") || !strings.Contains(err.Error(), "loopback")) {
				t.Errorf("listen %s: %v; want a refusal naming node.admin.listen and loopback", tc.listen, err)
			}
		})
	}
	if _, err := Parse("lbd.yaml", []byte("node:\n  admin: {token_file: token}\n")); err == nil || !strings.Contains(err.Error(), "node.admin.token_file: must be an absolute path") {
		t.Errorf("relative token_file: %v", err)
	}
}

// TestAdminTCPToken: sticky keys (session cookies) are never served on the TCP listener
// without a bearer token; with node.admin.token_file, every request on it needs the token.
func TestAdminTCPToken(t *testing.T) {
	n := ctlNode(t)
	do := func(h http.Handler, path, auth string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	// No token configured: metrics and status as before, sticky keys refused.
	open := n.tcpAdminHandler("")
	for _, path := range []string{"/v1/sticky/app", "/v1/sticky/app/export?since=0"} {
		if code, body := do(open, path, ""); code != http.StatusUnauthorized || !strings.Contains(body, "node.admin.token_file") {
			t.Errorf("GET %s on the TCP listener without a token = %d %s; want 401 naming node.admin.token_file", path, code, body)
		}
	}
	for _, path := range []string{"/metrics", "/healthz", "/v1/status"} {
		if code, body := do(open, path, ""); code != http.StatusOK {
			t.Errorf("GET %s on the TCP listener without a token = %d %s; want 200", path, code, body)
		}
	}
	// The unix socket is unchanged.
	if code, body := do(n.adminHandler(true), "/v1/sticky/app", ""); code != http.StatusConflict && code != http.StatusOK {
		t.Errorf("GET /v1/sticky/app on the socket = %d %s", code, body)
	}

	const token = "0123456789abcdef0123456789abcdef"
	locked := n.tcpAdminHandler(token)
	for _, tc := range []struct {
		path, auth string
		code       int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/v1/status", "", http.StatusUnauthorized},
		{"/v1/status", "Bearer wrong", http.StatusUnauthorized},
		{"/v1/status", "Basic " + token, http.StatusUnauthorized},
		{"/v1/status", "Bearer " + token, http.StatusOK},
		{"/metrics", "Bearer " + token, http.StatusOK},
		{"/v1/sticky/nope", "Bearer " + token, http.StatusNotFound}, // served: the backend does not exist
	} {
		code, body := do(locked, tc.path, tc.auth)
		if code != tc.code {
			t.Errorf("GET %s with %q = %d %s, want %d", tc.path, tc.auth, code, body, tc.code)
		}
	}
	// A change stays refused on TCP, even with the token.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/node/drain", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	locked.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("POST /v1/node/drain on TCP with the token = %d, want 403", rec.Code)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := readTokenFile(write("good", "0123456789abcdef0123\n", 0o600)); err != nil || tok != "0123456789abcdef0123" {
		t.Errorf("good token file: %q, %v", tok, err)
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"world-readable", "0123456789abcdef0123", 0o644, "mode 0644"},
		{"group-readable", "0123456789abcdef0123", 0o640, "chmod 600"},
		{"short", "abc", 0o600, "at least 16"},
		{"empty", "\n", 0o600, "at least 16"},
	} {
		_, err := readTokenFile(write(tc.name, tc.content, tc.mode))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := readTokenFile(filepath.Join(dir, "absent")); err == nil {
		t.Error("absent token file: no error")
	}
}
