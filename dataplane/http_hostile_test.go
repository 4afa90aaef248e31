package dataplane

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Tests of what hostile clients can do to the http engines: the memory and time a
// request may hold. See docs/security.md.

// TestHTTPHeadOnlyMemory opens 1 000 connections that each send a request head declaring
// a 100 MiB body, and no body byte: the process's heap must stay bounded by fixed
// buffers per connection, not by what the heads declare.
func TestHTTPHeadOnlyMemory(t *testing.T) {
	skipShort(t, "opens 1 000 connections")
	forEachEngine(t, testHTTPHeadOnlyMemory)
}

func testHTTPHeadOnlyMemory(t *testing.T, engine string) {
	const (
		conns    = 1000
		declared = 100 << 20
		// bound is what the whole process may add to its heap for conns connections:
		// 64 KiB each (the fasthttp engine's read buffer of max_header_bytes and the
		// prefetch of the body's first bytes are 24 KiB).
		bound = conns * 64 << 10
	)
	be := htNamed(t, "x")
	cfg := withEngine(htConfig("", be.addr()), engine)
	cfg.Frontends[0].MaxBodyBytes = declared
	d := htDataplane(t, cfg)
	addr := d.Addr("fe").String()
	active := d.metrics.connsActive.WithLabelValues("fe")
	head := []byte("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(declared) + "\r\n\r\n")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	check := func(n int) {
		t.Helper()
		// The heads are read by now; what they cost shows within moments.
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if grown := int64(ms.HeapAlloc) - int64(base.HeapAlloc); grown > bound {
				t.Fatalf("%d connections with a head alone grew the heap by %d MiB (bound %d MiB)", n, grown>>20, bound>>20)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var open []net.Conn
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	// A few first, so that an engine that reserves the body fails before it has
	// reserved hundreds of them.
	for _, batch := range []int{10, 190, 200, 200, 200, 200} {
		for range batch {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, c)
			if _, err := c.Write(head); err != nil {
				t.Fatal(err)
			}
		}
		n := len(open)
		htEventually(t, strconv.Itoa(n)+" connections open", func() bool { return htValue(t, active) >= float64(n) })
		check(n)
	}
	if be.reqs.Load() != 0 {
		t.Errorf("server got %d requests before any body byte", be.reqs.Load())
	}
}

// TestHTTPStreamedRequestBody sends bodies larger than the engines buffer: they stream
// to the server whole, by length and chunked, and go to another server when the first
// could not be connected to (no body byte was sent yet). A chunked body over
// max_body_bytes is refused.
func TestHTTPStreamedRequestBody(t *testing.T) { forEachEngine(t, testHTTPStreamedRequestBody) }

func testHTTPStreamedRequestBody(t *testing.T, engine string) {
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	cfg := withEngine(htConfig(BalanceRoundRobin, deadAddr(t), be.addr()), engine)
	cfg.Frontends[0].MaxBodyBytes = 4 << 20
	d := htDataplane(t, cfg)
	url := htURL(t, d)
	c := htClient(t)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body))
	for i := range 4 {
		var r io.Reader = bytes.NewReader(body)
		if i%2 == 1 {
			r = io.MultiReader(r) // no length: chunked
		}
		if code, got := htDo(t, c, "POST", url, r); code != 200 || got != want {
			t.Errorf("request %d: %d %q, want 200 %q", i, code, got, want)
		}
	}
	if got := htValue(t, d.metrics.retries.WithLabelValues("be")); got < 2 {
		t.Errorf("retries counted: %v, want at least 2", got)
	}
	big := io.MultiReader(bytes.NewReader(body), bytes.NewReader(body), bytes.NewReader(body), bytes.NewReader(body), strings.NewReader("x"))
	if code, got := htDo(t, c, "POST", url, big); code != 413 {
		t.Errorf("chunked body over max_body_bytes: %d %q, want 413", code, got)
	}
}

// TestHTTP2BodyDeadline: an HTTP/2 stream that sends its head and part of its body, then
// nothing, is answered 408 after client_idle, on a TLS and an h2c frontend; and a body
// over 64 KiB streams to the server whole.
func TestHTTP2BodyDeadline(t *testing.T) {
	skipShort(t, "waits for client_idle")
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		fmt.Fprint(w, n)
	})
	for _, fe := range h2tFrontends(t, be.addr(), 0, func(f *Frontend) { f.Timeouts.ClientIdle = 300 * time.Millisecond }) {
		t.Run(fe.name, func(t *testing.T) {
			c := h2tDial(t, fe)
			c.c.SetDeadline(time.Now().Add(5 * time.Second))
			id := c.next
			c.next += 2
			c.buf.Reset()
			for _, f := range h2tFields(fe, "POST", "/", 0, 0) {
				c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			if err := c.fr.WriteData(id, false, []byte("part")); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if r := c.result(id); r.status != 408 {
				t.Errorf("stalled body: %+v, want 408", r)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("408 after %v", el)
			}

			body := bytes.Repeat([]byte("x"), 1<<20)
			req, _ := http.NewRequest("POST", fe.base+"/", bytes.NewReader(body))
			if code, _, got := h2tDo(t, fe.h2, req); code != 200 || got != strconv.Itoa(len(body)) {
				t.Errorf("1 MiB body: %d %q", code, got)
			}
		})
	}
}
