package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ppLineServer reads the PROXY v1 line each connection starts with, answers
// "GOT <line without CRLF>\n", then echoes the rest.
func ppLineServer(t *testing.T) string {
	return serveTCP(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(c, "GOT %s\n", strings.TrimSuffix(line, "\r\n"))
		io.Copy(c, br)
	})
}

// ppV2TCP4 is a v2 PROXY header for a TCP over IPv4 connection.
func ppV2TCP4(src, dst [4]byte, sport, dport uint16) string {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
	b = append(append(b, src[:]...), dst[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return string(binary.BigEndian.AppendUint16(b, dport))
}

func ppDial(t *testing.T, port int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// TestProxyProtocol runs lbd between a PROXY-speaking client and servers: a tcp frontend
// that accepts a header and a backend that sends one on, an http frontend that puts the
// header's client in X-Forwarded-For, and a frontend whose trusted sources exclude the
// test, for which a header is just data.
func TestProxyProtocol(t *testing.T) {
	tell := ppLineServer(t)
	echo := startTCPEcho(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s", r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Real-IP"))
	}))
	t.Cleanup(web.Close)
	inPort, webPort, plainPort := freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "tcp")
	p := startLBD(t, fmt.Sprintf(`frontends:
  - name: pp-in
    mode: tcp
    bind: "127.0.0.1:%d"
    backend: tell
    accept_proxy: ["127.0.0.0/8"]
    timeouts: {client_header: 2s}
  - name: web
    bind: "127.0.0.1:%d"
    backend: web
    accept_proxy: ["127.0.0.1"]
  - name: plain
    mode: tcp
    bind: "127.0.0.1:%d"
    backend: echo
    accept_proxy: ["10.0.0.0/8", "::1/128"]
backends:
  - name: tell
    send_proxy: v1
    servers: [{address: "%s"}]
  - name: web
    servers: [{address: "%s"}]
  - name: echo
    servers: [{address: "%s"}]
`, inPort, webPort, plainPort, tell, strings.TrimPrefix(web.URL, "http://"), echo))

	t.Run("tcp v1 in, v1 out", func(t *testing.T) {
		c := ppDial(t, inPort)
		io.WriteString(c, "PROXY TCP4 203.0.113.7 198.51.100.1 4444 443\r\nhello")
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if want := "GOT PROXY TCP4 203.0.113.7 198.51.100.1 4444 443\n"; err != nil || line != want {
			t.Fatalf("server answered %q, %v; want %q", line, err, want)
		}
		got := make([]byte, 5)
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "hello" {
			t.Fatalf("echo %q, %v; want hello", got, err)
		}
	})
	t.Run("tcp v2 in, v1 out", func(t *testing.T) {
		c := ppDial(t, inPort)
		io.WriteString(c, ppV2TCP4([4]byte{203, 0, 113, 9}, [4]byte{198, 51, 100, 1}, 5555, 443))
		line, err := bufio.NewReader(c).ReadString('\n')
		if want := "GOT PROXY TCP4 203.0.113.9 198.51.100.1 5555 443\n"; err != nil || line != want {
			t.Fatalf("server answered %q, %v; want %q", line, err, want)
		}
	})
	t.Run("tcp malformed", func(t *testing.T) {
		c := ppDial(t, inPort)
		io.WriteString(c, "PROXY TCP4 203.0.113.7 198.51.100.1 4444 99999\r\nhello")
		if b, err := io.ReadAll(c); len(b) > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %q, %v; want the connection closed", b, err)
		}
		series := `lbd_proxy_protocol_errors_total{frontend="pp-in",reason="malformed"}`
		deadline := time.Now().Add(5 * time.Second)
		for p.metric(t, series) != "1" {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %q, want 1", series, p.metric(t, series))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("http", func(t *testing.T) {
		c := ppDial(t, webPort)
		io.WriteString(c, "PROXY TCP6 2001:db8::7 2001:db8::1 4444 80\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if want := "2001:db8::7|2001:db8::7"; string(b) != want {
			t.Fatalf("X-Forwarded-For|X-Real-IP = %q, want %q", b, want)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		c := ppDial(t, plainPort)
		msg := "PROXY TCP4 10.1.2.3 198.51.100.1 4444 443\r\nhello"
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	})
}

// TestProxyProtocolValidate: send_proxy on a backend an http frontend uses is refused,
// at the line of the key.
func TestProxyProtocolValidate(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "lbd.yaml")
	os.WriteFile(cfg, []byte(`frontends:
  - {name: web, bind: "127.0.0.1:8080", backend: app}
backends:
  - name: app
    send_proxy: v2
    servers: [{address: "127.0.0.1:9000"}]
`), 0o644)
	out, err := exec.Command(lbdBin, "validate", "--config", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("validate: want exit 1, got %v\n%s", err, out)
	}
	want := `lbd.yaml:5: backends[0].send_proxy: backend "app" is used by http frontend "web"`
	if !strings.Contains(string(out), want) {
		t.Fatalf("validate printed\n%s\nwant %q", out, want)
	}
}
