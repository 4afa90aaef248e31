//go:build linux

package dataplane

// The server side of the http event-loop engine (httploop_linux.go), against the
// fasthttp engine and what HAProxy or nginx do: response framing as servers get it
// wrong, the server-side and client-side timers, retries and their counting, reloads
// while answers stream, and large answers. Helpers carry the prefix rs.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// rsAnswer reads the final response to method from br; a failure to read is returned
// as a response with status 0 and the kind of error as its body, so that engines can be
// compared on it.
func rsAnswer(br *bufio.Reader, method string) *hlResp {
	for range 20 {
		r, err := hlReadResponse(br, method)
		if err != nil {
			kind := "cut"
			switch {
			case err == io.EOF:
				kind = "connection closed"
			case strings.Contains(err.Error(), "timeout"):
				kind = "timeout"
			}
			return &hlResp{body: "error: " + kind}
		}
		if r.status >= 200 {
			return r
		}
	}
	return &hlResp{body: "too many interim answers"}
}

// rsCounters reads the request-counting metrics of d: requests by class, server errors
// by reason, retries, sessions and no-server refusals, as "name{labels}" → value.
func rsCounters(t testing.TB, d *Dataplane) map[string]float64 {
	t.Helper()
	m := d.metrics
	out := map[string]float64{}
	for _, v := range []struct {
		name string
		vec  *prometheus.CounterVec
	}{
		{"requests", m.requests}, {"errors", m.errors}, {"retries", m.retries},
		{"sessions", m.sessions}, {"no_server", m.noServer},
	} {
		ch := make(chan prometheus.Metric, 64)
		go func() { v.vec.Collect(ch); close(ch) }()
		for c := range ch {
			var dm dto.Metric
			if err := c.Write(&dm); err != nil {
				t.Fatal(err)
			}
			var labels []string
			for _, l := range dm.Label {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			sort.Strings(labels)
			if val := dm.GetCounter().GetValue(); val != 0 {
				out[v.name+"{"+strings.Join(labels, ",")+"}"] = val
			}
		}
	}
	return out
}

// rsRequestsCounted is the sum of lbd_http_requests_total over every label set.
func rsRequestsCounted(counters map[string]float64) float64 {
	var n float64
	for k, v := range counters {
		if strings.HasPrefix(k, "requests{") {
			n += v
		}
	}
	return n
}

// rsSameCounters checks that two engines counted the same.
func rsSameCounters(t testing.TB, what string, loop, fast map[string]float64) {
	t.Helper()
	if diff := cmp.Diff(fast, loop); diff != "" {
		t.Errorf("%s: the engines counted differently (-fasthttp +loop):\n%s", what, diff)
	}
}

// rsEngines runs run for each engine, fasthttp first, as subtests, and returns what
// each returned.
func rsEngines[T any](t *testing.T, run func(t *testing.T, engine string) T) (loop, fast T) {
	t.Helper()
	t.Run(EngineFastHTTP, func(t *testing.T) { fast = run(t, EngineFastHTTP) })
	t.Run(EngineLoop, func(t *testing.T) { loop = run(t, EngineLoop) })
	return loop, fast
}

func TestHTTPLoopRespHeadOwnAnswer(t *testing.T) {
	forEachEngine(t, testHTTPLoopRespHeadOwnAnswer)
}

// lbd's own answer to a HEAD request (a 502 here: the only server is down) has no body
// (RFC 9110, section 9.3.2), whatever its Content-Length says: a body written after
// the head is read by the client as the start of the next response on the connection.
func testHTTPLoopRespHeadOwnAnswer(t *testing.T, engine string) {
	d := htDataplane(t, withEngine(hlOneConfig(deadAddr(t)), engine))
	c := hlDial(t, d)
	r := c.roundTrip("HEAD", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
	if r.status != 502 || r.close {
		t.Fatalf("HEAD: %d close=%v, want 502 and the connection kept", r.status, r.close)
	}
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := rsAnswer(c.br, "GET"); r.status != 502 || !strings.HasPrefix(r.body, "502 Bad Gateway: cannot connect") {
		t.Errorf("the GET after the HEAD got %d %q: the HEAD's answer carried a body", r.status, r.body)
	}
}

func TestHTTPLoopRespBytesAfterResponse(t *testing.T) {
	forEachEngine(t, testHTTPLoopRespBytesAfterResponse)
}

// A server sends more than its response: bytes after the end of a Content-Length body
// (here a whole second response). They are not the answer to anything lbd sent: they
// must not be taken for the answer to the next request, so the connection must not be
// used again (HAProxy and nginx close it; nginx peeks at an idle connection before it
// keeps it). The first response ends exactly where a 16 KiB read ends, so that the
// stray bytes are still in the socket when the response is complete; the client's
// next request is pipelined, so that it goes out at once.
func testHTTPLoopRespBytesAfterResponse(t *testing.T, engine string) {
	const head = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
	n := 16 << 10
	n -= len(fmt.Sprintf(head, n)) // same width: n stays 5 digits
	first := fmt.Sprintf(head, n) + strings.Repeat("a", n)
	if len(first) != 16<<10 {
		t.Fatalf("first response is %d bytes", len(first))
	}
	stray := "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected"
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		if r.target == "/a" {
			io.WriteString(w, first+stray)
			return true
		}
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
		return true
	})
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
	c := hlDial(t, d)
	c.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := rsAnswer(c.br, "GET"); r.status != 200 || len(r.body) != n {
		t.Fatalf("/a: %d %s", r.status, hlShort(r.body))
	}
	if r := rsAnswer(c.br, "GET"); r.status != 200 || r.body != "real" {
		t.Errorf("/b: %d %q; want the server's answer to /b, \"real\", not the bytes it sent after /a's", r.status, r.body)
	}
}

func TestHTTPLoopRespConnectTimeout(t *testing.T) {
	skipShort(t, "waits on real connect and response timeouts")
	forEachEngine(t, testHTTPLoopRespConnectTimeout)
}

// timeouts.connect bounds the connect, timeouts.response the wait for an answer once
// the request is sent (HAProxy's timeout connect and timeout server): a server that
// does not accept is given up after timeouts.connect, even when timeouts.response is
// shorter.
func testHTTPLoopRespConnectTimeout(t *testing.T, engine string) {
	cfg := withEngine(hlOneConfig(rvStuckListener(t)), engine)
	cfg.Backends[0].Timeouts.Connect = 700 * time.Millisecond
	cfg.Backends[0].Timeouts.Response = 200 * time.Millisecond
	d := htDataplane(t, cfg)
	c := hlDial(t, d)
	start := time.Now()
	r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	el := time.Since(start)
	if r.status != 502 || !strings.Contains(r.body, "cannot connect") {
		t.Errorf("got %d %q, want 502 cannot connect", r.status, r.body)
	}
	if el < 600*time.Millisecond || el > 2*time.Second {
		t.Errorf("the connect was given up after %v; timeouts.connect is 700ms (timeouts.response 200ms)", el)
	}
	if got := htValue(t, d.metrics.errors.WithLabelValues("be", "s0", "connect")); got != 1 {
		t.Errorf("connect errors counted: %v, want 1", got)
	}
}

func TestHTTPLoopRespClientHeaderFromAccept(t *testing.T) {
	skipShort(t, "waits on a real client header timeout")
	forEachEngine(t, testHTTPLoopRespClientHeaderFromAccept)
}

// client_header bounds a new connection's first request head from the accept, as on
// the fasthttp engine (fasthttp's ReadTimeout for the first request) and in HAProxy
// (timeout http-request): a slowloris client that waits before its first byte and then
// trickles its head does not get client_header again from its first byte.
func testHTTPLoopRespClientHeaderFromAccept(t *testing.T, engine string) {
	be := htNamed(t, "x")
	cfg := withEngine(hlOneConfig(be.addr()), engine)
	cfg.Frontends[0].Timeouts.ClientHeader = 400 * time.Millisecond
	d := htDataplane(t, cfg)
	c := hlDial(t, d)
	start := time.Now()
	time.Sleep(300 * time.Millisecond)
	got := make(chan time.Duration, 1)
	go func() {
		r := rsAnswer(c.br, "GET")
		if r.status != 408 {
			t.Errorf("got %d %q, want 408", r.status, r.body)
		}
		got <- time.Since(start)
	}()
	io.WriteString(c.c, "GET / HTTP/1.1\r\n")
	for i := 0; i < 30; i++ {
		select {
		case el := <-got:
			if el > 600*time.Millisecond {
				t.Errorf("408 after %v from the accept; client_header is 400ms", el)
			}
			return
		case <-time.After(50 * time.Millisecond):
			io.WriteString(c.c, "X-Slow: "+strconv.Itoa(i)+"\r\n")
		}
	}
	t.Errorf("no 408 after 1.8s")
}

func TestHTTPLoopRespTrickle(t *testing.T) {
	skipShort(t, "trickles answers across real response timeouts")
	forEachEngine(t, testHTTPLoopRespTrickle)
}

// timeouts.response bounds each stall of a response body, not the body (nginx's
// proxy_read_timeout, HAProxy's timeout server, and lbd's own documentation): a server
// whose body keeps coming, never pausing as long as the timeout, is not cut however long
// the whole takes. Four pauses of 400ms, timeout 800ms: the body takes twice the
// timeout, and each pause leaves 400ms for a loaded machine to deliver its byte late
// (pauses of 650ms left 150ms, which a loaded machine can spend). A small body (5
// bytes) and one over maxBufferedBody.
func testHTTPLoopRespTrickle(t *testing.T, engine string) {
	const timeout = 800 * time.Millisecond
	gaps := []time.Duration{400 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}
	pad := strings.Repeat("p", 2*maxBufferedBody)
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		first := "0"
		if r.target == "/large" {
			first = pad
		}
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(first)+len(gaps), first)
		for i, g := range gaps {
			time.Sleep(g)
			io.WriteString(w, strconv.Itoa(i+1))
		}
		return false
	})
	cfg := withEngine(hlOneConfig(be.addr), engine)
	cfg.Backends[0].Timeouts.Response = timeout
	d := htDataplane(t, cfg)
	for _, path := range []string{"/small", "/large"} {
		t.Run(path[1:], func(t *testing.T) {
			c := hlDial(t, d)
			c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
			r := rsAnswer(c.br, "GET")
			if r.status != 200 || !strings.HasSuffix(r.body, "1234") {
				t.Errorf("got %d %s, want 200 and the whole body (pauses shorter than the timeout)", r.status, hlShort(r.body))
			}
		})
	}
}

func TestHTTPLoopRespStall(t *testing.T) {
	skipShort(t, "waits on real response timeouts")
	forEachEngine(t, testHTTPLoopRespStall)
}

// A body that stalls is cut once the stall lasts timeouts.response, not before and not
// much later; and an answer whose head does not come within timeouts.response is a 504
// after that long.
func testHTTPLoopRespStall(t *testing.T, engine string) {
	const timeout = 300 * time.Millisecond
	release := make(chan struct{})
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		if r.target == "/body" {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		}
		<-release
		return false
	})
	t.Cleanup(func() { close(release) }) // before the server's cleanup, which waits for it
	cfg := withEngine(hlOneConfig(be.addr), engine)
	cfg.Backends[0].Timeouts.Response = timeout
	d := htDataplane(t, cfg)
	for _, path := range []string{"/body", "/head"} {
		c := hlDial(t, d)
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		start := time.Now()
		r := rsAnswer(c.br, "GET")
		el := time.Since(start)
		if path == "/head" && r.status != 504 {
			t.Errorf("%s: got %d %q, want 504", path, r.status, r.body)
		}
		// The loop engine has sent the head: it cuts the answer. The fasthttp engine
		// reads a body this small whole before it answers: it answers 504.
		if path == "/body" && r.status != 0 && r.status != 504 {
			t.Errorf("%s: got %d %q, want the answer cut, or 504", path, r.status, r.body)
		}
		if el < timeout-20*time.Millisecond || el > timeout+400*time.Millisecond {
			t.Errorf("%s: ended after %v, timeouts.response is %v", path, el, timeout)
		}
	}
}

func TestHTTPLoopRespClientIdle(t *testing.T) {
	skipShort(t, "waits on a real client idle timeout")
	forEachEngine(t, testHTTPLoopRespClientIdle)
}

// A client that stops reading in the middle of a large answer is cut after client_idle,
// and the server connection with it: the server's writes fail soon after the buffers on
// the way are full.
func testHTTPLoopRespClientIdle(t *testing.T, engine string) {
	const idle = 300 * time.Millisecond
	var blocked, failed atomic.Int64 // unix ms: the server's writes slowed down; failed
	chunk := bytes.Repeat([]byte("z"), 16<<10)
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		for {
			t0 := time.Now()
			if _, err := w.Write(chunk); err != nil {
				failed.Store(time.Now().UnixMilli())
				return
			}
			if time.Since(t0) > 50*time.Millisecond && blocked.Load() == 0 {
				blocked.Store(t0.UnixMilli())
			}
		}
	})
	cfg := withEngine(hlOneConfig(be.addr()), engine)
	cfg.Frontends[0].Timeouts.ClientIdle = idle
	d := htDataplane(t, cfg)
	c := hlDial(t, d)
	c.c.(*net.TCPConn).SetReadBuffer(64 << 10)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, err := io.ReadFull(c.br, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	htEventually(t, "the server's write failing", func() bool { return failed.Load() != 0 })
	el := time.Duration(failed.Load()-stopped.UnixMilli()) * time.Millisecond
	if el < idle*3/4 || el > idle+time.Second {
		t.Errorf("the server connection was cut %v after the client stopped reading; client_idle is %v", el, idle)
	}
	srv := d.snapshot().byName["be"].servers[0]
	htEventually(t, "the server released", func() bool { return srv.Active() == 0 })
}

// rsCutScenarios are server answers that go wrong after their head.
var rsCutScenarios = []struct{ name, answer string }{
	{"short Content-Length body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"},
	{"short streamed body", "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("s", 100000)},
	{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"},
	{"cut chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
}

// A response that fails after its head (cut, or malformed) is still a request lbd
// answered: lbd_http_requests_total counts it once, under a class, on both engines, and
// both count a server error (reset) for it. The class may differ: the fasthttp engine
// reads a small body whole before it answers, so it can still answer 502; the loop has
// sent the server's head already and counts its status.
func TestHTTPLoopRespCutCounted(t *testing.T) {
	skipShort(t, "every cut scenario on both engines")
	for _, sc := range rsCutScenarios {
		t.Run(sc.name, func(t *testing.T) {
			loop, fast := rsEngines(t, func(t *testing.T, engine string) map[string]float64 {
				be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
					io.WriteString(w, sc.answer)
					return false
				})
				d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
				c := hlDial(t, d)
				c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				rsAnswer(c.br, "GET")
				c.c.Close()
				// Counted when the answer ends; not at all when the bug is there.
				got := rsCounters(t, d)
				for deadline := time.Now().Add(time.Second); rsRequestsCounted(got) < 1 && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
					got = rsCounters(t, d)
				}
				time.Sleep(50 * time.Millisecond)
				got = rsCounters(t, d)
				if n := rsRequestsCounted(got); n != 1 {
					t.Errorf("lbd_http_requests_total counted %v requests, want 1: %v", n, got)
				}
				return got
			})
			for engine, got := range map[string]map[string]float64{EngineLoop: loop, EngineFastHTTP: fast} {
				if n := got[`errors{backend="be",reason="reset",server="s0"}`]; n != 1 {
					t.Errorf("%s: %s engine counted %v reset errors, want 1: %v", sc.name, engine, n, got)
				}
			}
		})
	}
}

// rsRetryResult is what a retry scenario gave: the statuses and the counters.
type rsRetryResult struct {
	statuses []int
	counters map[string]float64
	reqs     []int64 // requests each server read
}

// Failures before the first byte of an answer, and which are tried again: on another
// server (connect refused: always; reset or closed before the first byte, or no answer
// in time: GET, not POST), or on another connection to the same server (a pooled
// connection the server closed: GET; POST too when lbd could know it was closed). The
// engines must answer the same, send the same requests to the servers and count the
// same errors, retries, sessions and requests.
func TestHTTPLoopRespRetries(t *testing.T) {
	skipShort(t, "every retry scenario on both engines, some waiting on real timeouts")
	type server func(t *testing.T) (addr string, reqs func() int64)
	ok := func(t *testing.T) (string, func() int64) {
		be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		return be.addr, be.reqs.Load
	}
	dead := func(t *testing.T) (string, func() int64) { return deadAddr(t), func() int64 { return 0 } }
	reset := func(t *testing.T) (string, func() int64) {
		var n atomic.Int64
		addr, _ := htRawServer(t, func(c net.Conn) {
			if _, err := hlReadRequest(bufio.NewReader(c)); err == nil {
				n.Add(1)
				rvReset(c)
			}
		})
		return addr, n.Load
	}
	empty := func(t *testing.T) (string, func() int64) {
		be := hlRaw(t, func(w io.Writer, r *hlReq) bool { return false })
		return be.addr, be.reqs.Load
	}
	hang := func(t *testing.T) (string, func() int64) {
		release := make(chan struct{})
		be := hlRaw(t, func(w io.Writer, r *hlReq) bool { <-release; return false })
		t.Cleanup(func() { close(release) })
		return be.addr, be.reqs.Load
	}
	// closes after each answer without saying so: its pooled connection is stale
	stale := func(t *testing.T) (string, func() int64) {
		be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return false
		})
		return be.addr, be.reqs.Load
	}
	for _, tc := range []struct {
		name    string
		servers []server
		methods []string
		// wait lets the stale scenario's server close its connection between requests
		wait bool
	}{
		{"connect refused", []server{dead, ok}, []string{"GET", "POST", "GET", "POST"}, false},
		{"reset before the first byte", []server{reset, ok}, []string{"GET", "POST", "GET", "POST"}, false},
		{"closed before the first byte", []server{empty, ok}, []string{"GET", "POST", "GET", "POST"}, false},
		{"no answer in time", []server{hang, ok}, []string{"GET", "POST", "GET", "POST"}, false},
		{"stale pooled connection, GET", []server{stale}, []string{"GET", "GET", "GET"}, true},
		{"stale pooled connection, POST", []server{stale}, []string{"GET", "POST", "POST"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loop, fast := rsEngines(t, func(t *testing.T, engine string) rsRetryResult {
				var addrs []string
				var counts []func() int64
				for _, s := range tc.servers {
					a, n := s(t)
					addrs, counts = append(addrs, a), append(counts, n)
				}
				cfg := withEngine(htConfig(BalanceRoundRobin, addrs...), engine)
				cfg.Backends[0].Timeouts.Response = 200 * time.Millisecond
				d := htDataplane(t, cfg)
				c := hlDial(t, d)
				var res rsRetryResult
				for _, m := range tc.methods {
					body := ""
					if m == "POST" {
						body = "Content-Length: 1\r\n\r\nx"
					} else {
						body = "\r\n"
					}
					c.send(m + " / HTTP/1.1\r\nHost: a\r\n" + body)
					r := rsAnswer(c.br, m)
					res.statuses = append(res.statuses, r.status)
					if r.status == 0 || r.close {
						c = hlDial(t, d)
					}
					if tc.wait {
						time.Sleep(50 * time.Millisecond)
					}
				}
				time.Sleep(50 * time.Millisecond)
				res.counters = rsCounters(t, d)
				for _, n := range counts {
					res.reqs = append(res.reqs, n())
				}
				if n := rsRequestsCounted(res.counters); n != float64(len(tc.methods)) {
					t.Errorf("lbd_http_requests_total counted %v, want %d", n, len(tc.methods))
				}
				return res
			})
			if !slices.Equal(loop.statuses, fast.statuses) {
				t.Errorf("statuses: loop %v, fasthttp %v", loop.statuses, fast.statuses)
			}
			if !slices.Equal(loop.reqs, fast.reqs) {
				t.Errorf("requests each server read: loop %v, fasthttp %v", loop.reqs, fast.reqs)
			}
			rsSameCounters(t, tc.name, loop.counters, fast.counters)
			for i, s := range fast.statuses {
				if strings.HasPrefix(tc.name, "stale") && s != 200 {
					t.Errorf("fasthttp: request %d (%s) on a stale pooled connection: %d, want 200", i, tc.methods[i], s)
				}
			}
		})
	}
}

// Trailers of a chunked response reach the client as the fasthttp engine sends them:
// a trailer section a client cannot parse (a line without a colon) or that holds a
// framing field is not passed on as it came.
func TestHTTPLoopRespTrailers(t *testing.T) {
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		switch r.target {
		case "/no-colon":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nno colon here\r\n\r\n")
		case "/content-length":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 9\r\n\r\n")
		default:
			io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
		}
		return true
	})
	p := hlStart(t, hlOneConfig(be.addr))
	for _, path := range []string{"/ok", "/no-colon", "/content-length"} {
		t.Run(path, func(t *testing.T) {
			p.run(t, func(c *hlConn) []*hlResp {
				c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
				return []*hlResp{rsAnswer(c.br, "GET")}
			})
		})
	}
}

// Response framing that servers get wrong, or right but rarely: the engines answer
// the same, and the client connection carries the next request to its own answer.
func TestHTTPLoopRespFraming(t *testing.T) {
	big := strings.Repeat("h", 17<<10)
	cases := map[string]string{
		"/head-chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-K: 1\r\n\r\n0\r\n\r\n",
		"/304-cl":       "HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nETag: \"e\"\r\n\r\n",
		"/204-body":     "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
		"/cl-extra":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected",
		"/cl-te":        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"/te-gzip":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"/cl-two":       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"/big-head":     "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 2\r\n\r\nok",
		"/interim15":    strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 15) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/interim16":    strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 16) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/101":          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/http10":       "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/http10-ka":    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"/http10-close": "HTTP/1.0 200 OK\r\n\r\nuntil close",
		"/conn-close":   "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	}
	closes := map[string]bool{"/http10-close": true}
	// lbd answers these 502 (invalid response).
	refused := map[string]bool{"/te-gzip": true, "/cl-two": true, "/big-head": true, "/interim16": true, "/101": true}
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		if r.target == "/next" {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
			return true
		}
		io.WriteString(w, cases[r.target])
		return !closes[r.target]
	})
	p := hlStart(t, hlOneConfig(be.addr))
	paths := slices.Sorted(func(yield func(string) bool) {
		for k := range cases {
			if !yield(k) {
				return
			}
		}
	})
	for _, path := range paths {
		for _, method := range []string{"GET", "HEAD"} {
			// HEAD requests that lbd answers itself (502) are left to
			// TestHTTPLoopRespHeadOwnAnswer.
			if method == "GET" && path == "/head-chunked" || method == "HEAD" && refused[path] {
				continue
			}
			t.Run(method+path, func(t *testing.T) {
				got := p.run(t, func(c *hlConn) []*hlResp {
					c.send(method + " " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
					r := rsAnswer(c.br, method)
					if r.status == 0 || r.close {
						return []*hlResp{r}
					}
					c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
					return []*hlResp{r, rsAnswer(c.br, "GET")}
				})
				if len(got) == 2 && (got[1].status != 200 || got[1].body != "next") {
					t.Errorf("the next request on the connection got %d %q", got[1].status, got[1].body)
				}
				if want := refused[path]; want != (got[0].status == 502) {
					t.Errorf("got %d %q; want 502: %v", got[0].status, got[0].body, want)
				}
			})
		}
	}
}

func TestHTTPLoopRespReloadStreaming(t *testing.T) {
	forEachEngine(t, testHTTPLoopRespReloadStreaming)
}

// Reloads while answers stream: the server removed, its address changed. The answers in
// flight complete whole; new requests go to the new server; afterwards the loops hold
// no connection to the old server, and each pool's loopConns is the connections the
// loops hold.
func testHTTPLoopRespReloadStreaming(t *testing.T, engine string) {
	const size = 4 << 20
	chunk := bytes.Repeat([]byte("r"), 64<<10)
	gate := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	var streaming atomic.Int64
	old := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			io.WriteString(w, "old")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(chunk)
		w.(http.Flusher).Flush()
		streaming.Add(1)
		<-gate
		for n := len(chunk); n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	next := htNamed(t, "new")
	cfg := withEngine(htConfig("", old.addr()), engine)
	d := htDataplane(t, cfg)
	const n = 6
	conns := make([]*hlConn, n)
	for i := range conns {
		conns[i] = hlDial(t, d)
		conns[i].send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	htEventually(t, "the answers streaming", func() bool { return streaming.Load() == n })
	// The same server name at another address, then the server gone for another.
	moved := cloneConfig(cfg)
	moved.Backends[0].Servers[0].Address = next.addr()
	if err := d.Apply(moved); err != nil {
		t.Fatal(err)
	}
	renamed := cloneConfig(moved)
	renamed.Backends[0].Servers[0].Name = "other"
	if err := d.Apply(renamed); err != nil {
		t.Fatal(err)
	}
	close(gate)
	for i, c := range conns {
		r := c.read("GET")
		if r.status != 200 || len(r.body) != size || r.close {
			t.Errorf("answer %d in flight: %d, %d bytes, close=%v", i, r.status, len(r.body), r.close)
			continue
		}
		if r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 || r.body != "new" {
			t.Errorf("connection %d after the reloads: %d %q", i, r.status, r.body)
		}
	}
	htEventually(t, "the old server's connections closed", func() bool { return old.closed.Load() == old.conns.Load() })
	if engine != EngineLoop {
		return
	}
	for _, c := range conns {
		c.c.Close()
	}
	rvSettled(t, d)
	if st := rvLoops(t, d); st.servers != st.idle {
		t.Errorf("the loops hold %d server connections, %d of them idle", st.servers, st.idle)
	}
}

func TestHTTPLoopRespLarge(t *testing.T) {
	skipShort(t, "moves 64 MiB answers")
	forEachEngine(t, testHTTPLoopRespLarge)
}

// 64 MiB answers, by Content-Length and chunked, arrive whole and in order at a client
// reading at its own pace, one after the other on one connection.
func testHTTPLoopRespLarge(t *testing.T, engine string) {
	const size = 64 << 20
	fill := func(b []byte, i int) {
		for j := range b {
			b[j] = byte(i*7 + j*13 + j>>8)
		}
	}
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cl" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		buf := make([]byte, 64<<10)
		for i := 0; i < size/len(buf); i++ {
			fill(buf, i)
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	want := sha256.New()
	buf := make([]byte, 64<<10)
	for i := 0; i < size/len(buf); i++ {
		fill(buf, i)
		want.Write(buf)
	}
	wantSum := want.Sum(nil)
	d := htDataplane(t, withEngine(hlOneConfig(be.addr()), engine))
	c := hlDial(t, d)
	for _, path := range []string{"/cl", "/chunked", "/cl"} {
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), wantSum) {
			t.Errorf("%s: %d bytes, %v, sha256 %x; want %d bytes, %x", path, n, err, h.Sum(nil), size, wantSum)
		}
		if wantChunked := path == "/chunked"; slices.Contains(resp.TransferEncoding, "chunked") != wantChunked {
			t.Errorf("%s: Transfer-Encoding %q", path, resp.TransferEncoding)
		}
	}
}
