package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzHTTPCheck serves arbitrary bytes as a server's answer to an HTTP health check,
// with arbitrary expect_status and expect_body. A check that passes must have had an
// answer that net/http reads, with a status in the ranges and (with expect_body) a
// first 64 KiB that contains the string; the ranges parseStatusRanges accepts must be
// within 100-599, one per comma-separated part. The server is a loopback listener
// created once per fuzzing process.
func FuzzHTTPCheck(f *testing.F) {
	for _, c := range []struct{ resp, status, body string }{
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "200-399", ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "200", "ell"},
		{"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "200-399", ""},
		{"HTTP/1.1 204 No Content\r\n\r\n", "200, 204", ""},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "200-299", "abc"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", "200", "ab"},
		{"HTTP/1.0 200 OK\r\n\r\nbody until close", "100-599", "close"},
		{"HTTP/1.1 301 Moved\r\nLocation: /\r\nContent-Length: 0\r\n\r\n", "300-399", ""},
		{"HTTP/1.1 2000 Odd\r\n\r\n", "200-399", ""},
		{"garbage\r\n\r\n", "200", ""},
		{"", "200", ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "200", "short"},
	} {
		f.Add([]byte(c.resp), c.status, c.body)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	answers := make(chan []byte)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			resp := <-answers
			// Read the request first: closing with it unread would reset the
			// connection and lose the answer.
			c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			c.Write(resp)
			c.Close()
		}
	}()
	f.Cleanup(func() { l.Close(); <-done })
	addr := l.Addr().String()

	f.Fuzz(func(t *testing.T, resp []byte, status, expectBody string) {
		ranges, err := parseStatusRanges(status)
		if err == nil {
			if n := strings.Count(status, ",") + 1; len(ranges) != n {
				t.Fatalf("parseStatusRanges(%q) = %v: want %d ranges", status, ranges, n)
			}
			for _, r := range ranges {
				if r.lo < 100 || r.hi > 599 || r.lo > r.hi {
					t.Fatalf("parseStatusRanges(%q) holds %v", status, r)
				}
			}
		} else {
			ranges = []statusRange{{200, 399}}
		}
		hc := &HTTPCheck{Method: "GET", Path: "/", ExpectBody: expectBody}
		go func() { answers <- resp }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = httpCheck(ctx, addr, false, "127.0.0.1", hc, ranges)
		if err != nil {
			return
		}
		// The check passed: read the same bytes independently.
		r, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(resp)), &http.Request{Method: "GET"})
		if rerr != nil {
			t.Fatalf("check passed on an answer net/http cannot read: %v", rerr)
		}
		if !statusIn(r.StatusCode, ranges) {
			t.Fatalf("check passed with status %d outside %v", r.StatusCode, ranges)
		}
		if expectBody != "" {
			body, _ := io.ReadAll(io.LimitReader(r.Body, maxCheckBody))
			if !bytes.Contains(body, []byte(expectBody)) {
				t.Fatalf("check passed with a body %q that lacks %q", body, expectBody)
			}
		}
	})
}
