//go:build linux

package dataplane

// Edge cases of the http event-loop engine (httploop_linux.go): request framing as the
// server gets it, interim answers, buffering bounds, pool limits, and the accounting of
// connections, servers and pools when clients and servers go away at each stage.
// Helpers carry the prefix rv.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lbd/dataplane/internal/evloop"
)

// rvLoopState is what the event loops hold for the http engine, read on the loops.
type rvLoopState struct {
	clients, servers, idle int // httpConn and srvConn in the descriptor tables; pooled srvConn
	maxIn, maxOut          int // the largest cap(c.in) and len(c.out) of a client connection
	timers                 int // entries in the loops' deadline heaps
}

// rvLoops reads what d's event loops hold, if they run.
func rvLoops(t testing.TB, d *Dataplane) rvLoopState {
	t.Helper()
	return rvLoopsOf(d.loops.running())
}

// rvLoopsOf reads what loops hold: on each loop while it runs, and directly once it has
// stopped.
func rvLoopsOf(loops []*eventLoop) rvLoopState {
	var st rvLoopState
	for _, l := range loops {
		read := func() {
			l.Handlers(func(_ int, x evloop.Handler) {
				switch v := x.(type) {
				case *httpConn:
					st.clients++
					st.maxIn = max(st.maxIn, cap(v.in))
					st.maxOut = max(st.maxOut, len(v.out))
				case *srvConn:
					st.servers++
				}
			})
			if l.http != nil {
				for _, idle := range l.http.pools {
					st.idle += len(idle)
				}
			}
			st.timers += l.Timers().Len()
		}
		if !l.do(read) {
			<-l.Done()
			read()
		}
	}
	return st
}

// rvFrontend is the http frontend fe of d.
func rvFrontend(t testing.TB, d *Dataplane) *httpFrontend {
	t.Helper()
	return l4Runner(t, d, "fe").(*httpFrontend)
}

// rvLoopRegistry is how many connections f.loops holds.
func rvLoopRegistry(f *httpFrontend) int {
	f.loops.mu.Lock()
	defer f.loops.mu.Unlock()
	return len(f.loops.conns)
}

// rvSettled waits until every client connection of d is gone from the loops and from
// the accounting: the active gauge at 0, f.loops empty, no httpConn in a loop, every
// server of backend be with no request in flight, and each pool's loopConns equal to
// the server connections the loops hold. Client connections must be closed first.
func rvSettled(t testing.TB, d *Dataplane) {
	t.Helper()
	f := rvFrontend(t, d)
	b := d.snapshot().byName["be"]
	active := d.metrics.connsActive.WithLabelValues("fe")
	var why string
	ok := func() bool {
		st := rvLoops(t, d)
		var conns int32
		for _, c := range b.http.clients {
			conns += c.pool.loopConns.Load()
		}
		var inFlight int64
		for _, s := range b.servers {
			inFlight += s.Active()
		}
		why = fmt.Sprintf("gauge %v, f.loops %d, loop clients %d, loop server conns %d (idle %d), loopConns %d, servers active %d, timers %d",
			metricValue(t, active), rvLoopRegistry(f), st.clients, st.servers, st.idle, conns, inFlight, st.timers)
		return metricValue(t, active) == 0 && rvLoopRegistry(f) == 0 && st.clients == 0 &&
			int(conns) == st.servers && inFlight == 0 && st.timers == st.idle
	}
	deadline := time.Now().Add(3 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %s", why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rvRawBytes is a server that reads one request head and records the raw bytes that
// follow it for a moment, then answers 200 "ok" and closes.
type rvRawBytes struct {
	addr string
	mu   sync.Mutex
	got  []byte // everything the server received
}

func rvRawServer(t testing.TB) *rvRawBytes {
	b := &rvRawBytes{}
	b.addr, _ = htRawServer(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			b.mu.Lock()
			b.got = append(b.got, buf[:n]...)
			b.mu.Unlock()
			if err != nil {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	return b
}

func (b *rvRawBytes) bytes() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.got)
}

func TestHTTPLoopConnectionNamesTransferEncoding(t *testing.T) {
	forEachEngine(t, testHTTPLoopConnectionNamesTransferEncoding)
}

// A client lists Transfer-Encoding in Connection, which deletes the headers it names: a
// proxy that dropped the framing header but sent the chunked body behind the head would
// make the server take the body for a second request. The body must reach the server as
// the body, framed.
func testHTTPLoopConnectionNamesTransferEncoding(t *testing.T, engine string) {
	be := hlEcho(t)
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
	c := hlDial(t, d)
	r := c.roundTrip("POST", "POST /te HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if r.status != 200 || !strings.Contains(r.body, `body "hello"`) {
		t.Errorf("got %d %q; want the server to get the body \"hello\"", r.status, r.body)
	}
	if n := be.reqs.Load(); n != 1 {
		t.Errorf("the server read %d requests, want 1 (the body was taken for a request of its own)", n)
	}
}

func TestHTTPLoopChunkedFramingToServer(t *testing.T) {
	forEachEngine(t, testHTTPLoopChunkedFramingToServer)
}

// Chunked request bodies that fasthttp's reader refuses (bare LF line ends, a bare LF in
// a chunk extension, whitespace before ';') must not reach a server as they came: a
// server, or a proxy behind lbd, that frames such chunks differently would see other
// message boundaries than lbd did (chunked request smuggling). Each must be refused as
// fasthttp refuses it (400), or reach the server framed as RFC 9112 says: the decoded
// body with a Content-Length, or chunks with CRLF line ends.
func testHTTPLoopChunkedFramingToServer(t *testing.T, engine string) {
	for _, tc := range []struct{ name, body string }{
		{"bare LF", "5\nhello\n0\n\n"},
		{"bare LF after the data", "5\r\nhello\n0\r\n\r\n"},
		{"LF in an extension", "5;a=b\nhello\r\n0\r\n\r\n"},
		{"space before the extension", "5 ;a=b\r\nhello\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := rvRawServer(t)
			d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
			c := hlDial(t, d)
			r := c.roundTrip("POST", "POST /lf HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+tc.body)
			if r.status == 400 {
				return // refused, as fasthttp refuses it
			}
			if r.status != 200 {
				t.Fatalf("got %d %q", r.status, r.body)
			}
			got := be.bytes()
			head, body, ok := strings.Cut(got, "\r\n\r\n")
			if !ok {
				t.Fatalf("the server got no complete head: %q", got)
			}
			lower := strings.ToLower(head)
			switch {
			case strings.Contains(lower, "\r\ncontent-length: 5"):
				if body != "hello" {
					t.Errorf("body %q with Content-Length 5", body)
				}
			case strings.Contains(lower, "\r\ntransfer-encoding: chunked"):
				if body != "5\r\nhello\r\n0\r\n\r\n" {
					t.Errorf("the server got the chunked body %q verbatim; fasthttp refuses it (400)", body)
				}
			default:
				t.Errorf("the server got a head without framing: %q", head)
			}
		})
	}
}

func TestHTTPLoopInterimSplit(t *testing.T) {
	forEachEngine(t, testHTTPLoopInterimSplit)
}

// An interim answer (103 Early Hints) whose head comes in two reads, followed by a
// final head that also comes in pieces: the interim answer is skipped and the final
// head parsed from where it starts, whatever the reads.
func testHTTPLoopInterimSplit(t *testing.T, engine string) {
	pieces := []string{
		"HTTP/1.1 103 Ea",
		"rly Hints\r\n\r\nHTTP/1.1 200 OK\r\nX-Pad: 0123456789012345678901234567890123456789\r\nContent-",
		"Length: 2\r\nX-Final: yes\r\n\r\nok",
	}
	be := hlRaw(t, func(w io.Writer, r *hlReq) bool {
		for _, p := range pieces {
			io.WriteString(w, p)
			time.Sleep(30 * time.Millisecond)
		}
		return true
	})
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), engine))
	c := hlDial(t, d)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	r := c.final("GET")
	if r.status != 200 || r.body != "ok" || r.header.get("X-Final") != "yes" {
		t.Errorf("got %d %q X-Final=%q; want 200 \"ok\"", r.status, r.body, r.header.get("X-Final"))
	}
}

func TestHTTPLoopPoolSizeDoesNotRefuse(t *testing.T) {
	skipShort(t, "holds requests at a slow server")
	forEachEngine(t, testHTTPLoopPoolSizeDoesNotRefuse)
}

// pool_size is documented as the most idle connections kept per server. The fasthttp
// engine's HostClient bounds connections by it too, but a request waits for a free
// one for up to timeouts.connect; the loop engine bounds only the idle ones. Either
// way, requests over pool_size in flight are answered, not refused.
func testHTTPLoopPoolSizeDoesNotRefuse(t *testing.T, engine string) {
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, "ok")
	})
	cfg := withEngine(hlOneConfig(be.addr()), engine)
	cfg.Backends[0].PoolSize = 1
	cfg.Backends[0].Timeouts.Connect = 2 * time.Second
	d := htDataplane(t, cfg)
	const n = 3
	conns := make([]*hlConn, n)
	for i := range conns {
		conns[i] = hlDial(t, d)
	}
	for _, c := range conns {
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	for i, c := range conns {
		if r := c.read("GET"); r.status != 200 || r.body != "ok" {
			t.Errorf("request %d: %d %q; want 200 \"ok\" after waiting for the pooled connection", i, r.status, r.body)
		}
	}
}

// A client that pipelines many small requests while reading the answers: the loop
// holds at most a read's worth of the backlog; the rest waits in the client's socket
// (the loop does not read while it holds the next request).
func TestHTTPLoopPipelineBacklogBounded(t *testing.T) {
	skipShort(t, "pipelines requests until the socket buffers fill")
	be := htNamed(t, "x")
	d := htDataplane(t, withEngine(hlOneConfig(be.addr()), EngineLoop))
	conn, err := net.Dial("tcp", d.Addr("fe").String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	const n = 40000
	req := []byte("GET /p HTTP/1.1\r\nHost: a\r\n\r\n")
	done := make(chan struct{})
	go func() { // the writer
		defer close(done)
		buf := bytes.Repeat(req, 1000)
		for i := 0; i < n/1000; i++ {
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	}()
	var read atomic.Int64
	go func() { // the reader
		br := bufio.NewReader(conn)
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			read.Add(1)
		}
	}()
	const bound = 256 << 10
	worst := 0
	for start := time.Now(); time.Since(start) < 4*time.Second && read.Load() < n; time.Sleep(5 * time.Millisecond) {
		st := rvLoops(t, d)
		worst = max(worst, st.maxIn)
		if worst > bound {
			break
		}
	}
	conn.Close()
	<-done
	t.Logf("answers read: %d of %d; largest client input buffer: %d bytes", read.Load(), n, worst)
	if worst > bound {
		t.Errorf("a client's input buffer grew to %d bytes (over %d): the loop buffers the client's whole pipelined backlog", worst, bound)
	}
}

// rvStuckListener is a loopback address whose listener never accepts and whose accept
// queue is full: a connect to it stays in SYN_SENT.
func rvStuckListener(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	for range 4 { // fill the queue; the dials that do not fit time out
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

// rvReset closes c with an RST.
func rvReset(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// Clients and servers going away at each stage of an exchange: afterwards the
// connection gauge is back to 0, no connection is left in f.loops or in a loop's
// descriptor table or deadline heap, every server's in-flight count is 0, and each
// pool's loopConns count is the server connections the loops still hold.
func TestHTTPLoopAccounting(t *testing.T) {
	skipShort(t, "includes 64 MiB answers and slow servers")
	big := bytes.Repeat([]byte("x"), 256<<10)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/slow":
			time.Sleep(100 * time.Millisecond)
			io.WriteString(w, "slow")
		case "/big": // 64 MiB, chunked
			for range 256 {
				if _, err := w.Write(big); err != nil {
					return
				}
			}
		case "/cut": // a Content-Length body cut short
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "short")
			w.(http.Flusher).Flush()
			if hj, ok := w.(http.Hijacker); ok {
				c, _, _ := hj.Hijack()
				c.Close()
			}
		default:
			io.WriteString(w, "ok")
		}
	})
	cfg := withEngine(htConfig(BalanceRoundRobin, be.addr()), EngineLoop)
	cfg.Backends[0].Timeouts.Response = 300 * time.Millisecond
	d := htDataplane(t, cfg)
	addr := d.Addr("fe").String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n" }

	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{{
		name: "silent client closes",
		run: func(t *testing.T) {
			c := dial()
			time.Sleep(20 * time.Millisecond)
			c.Close()
		},
	}, {
		name: "client closes mid-head",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, "GET / HTTP/1.1\r\nHo")
			time.Sleep(20 * time.Millisecond)
			c.Close()
		},
	}, {
		name: "client closes mid-body",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
			time.Sleep(20 * time.Millisecond)
			rvReset(c)
		},
	}, {
		name: "client resets while the server thinks",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, get("/hang"))
			time.Sleep(50 * time.Millisecond)
			rvReset(c)
		},
	}, {
		name: "client half-closes after its request",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, get("/slow"))
			c.(*net.TCPConn).CloseWrite()
			b, err := io.ReadAll(c)
			if err != nil || !bytes.HasSuffix(b, []byte("slow")) {
				t.Errorf("got %q, %v", b, err)
			}
			c.Close()
		},
	}, {
		name: "client resets while a large answer waits for it",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, get("/big"))
			time.Sleep(200 * time.Millisecond)
			rvReset(c)
		},
	}, {
		name: "client resets with pipelined requests held",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, get("/slow")+get("/")+get("/"))
			time.Sleep(20 * time.Millisecond)
			rvReset(c)
		},
	}, {
		name: "server cuts the body",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, get("/cut"))
			io.ReadAll(c)
			c.Close()
		},
	}, {
		name: "response timeout",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, get("/hang"))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 504 {
				t.Errorf("got %v, %v; want 504", resp, err)
			}
			c.Close()
		},
	}, {
		name: "handed over, then closed",
		run: func(t *testing.T) {
			c := dial()
			io.WriteString(c, "GET / HTTP/1.0\r\nHost: a\r\n\r\n")
			io.ReadAll(c)
			c.Close()
		},
	}, {
		name: "many keep-alive requests",
		run: func(t *testing.T) {
			c := dial()
			br := bufio.NewReader(c)
			for range 50 {
				io.WriteString(c, get("/"))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
			}
			c.Close()
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			rvSettled(t, d)
		})
	}
}

// A server that is not reachable (its accept queue is full: the connect hangs): a
// client that resets while lbd connects, and one that waits for the connect timeout,
// leave nothing behind.
func TestHTTPLoopAccountingConnecting(t *testing.T) {
	skipShort(t, "waits on a real connect timeout")
	cfg := withEngine(htConfig(BalanceRoundRobin, rvStuckListener(t)), EngineLoop)
	cfg.Backends[0].Timeouts.Connect = 300 * time.Millisecond
	d := htDataplane(t, cfg)
	t.Run("client resets", func(t *testing.T) {
		c := hlDial(t, d)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		if st := rvLoops(t, d); st.servers != 1 {
			t.Errorf("%d server connections on the loops while connecting, want 1", st.servers)
		}
		rvReset(c.c)
		rvSettled(t, d)
	})
	t.Run("connect timeout", func(t *testing.T) {
		c := hlDial(t, d)
		r := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if r.status != 502 {
			t.Errorf("got %d %q, want 502", r.status, r.body)
		}
		c.c.Close()
		rvSettled(t, d)
	})
}

// rvSmallRcvBufServer is a raw server whose connections have a small receive buffer:
// it reads a request head, starts a 64 MiB answer at once, and reads the request body
// only after a moment, while its answer streams.
func rvSmallRcvBufServer(t testing.TB) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 2048)
			unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, 536)
		})
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := htServeRaw(t, ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReaderSize(c, 512)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		defer c.Close() // ends the writer, once the body is read
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n")
			buf := make([]byte, 64<<10)
			for range 1024 {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
		time.Sleep(300 * time.Millisecond)
		io.Copy(io.Discard, br)
	})
	return addr
}

// A client that does not read its answer: lbd holds at most a read's worth of it, and
// stops reading the server (backpressure), also when the answer starts while the
// request body is still being written to a server that reads slowly.
func TestHTTPLoopBackpressure(t *testing.T) {
	skipShort(t, "streams 64 MiB answers to clients that do not read")
	const bound = 4 << 20
	check := func(t *testing.T, d *Dataplane, req string) {
		t.Helper()
		c := hlDial(t, d)
		c.c.(*net.TCPConn).SetReadBuffer(4096)
		c.send(req)
		worst := 0
		for start := time.Now(); time.Since(start) < 1500*time.Millisecond && worst <= bound; time.Sleep(20 * time.Millisecond) {
			worst = max(worst, rvLoops(t, d).maxOut)
		}
		rvReset(c.c)
		t.Logf("largest output held for the client: %d bytes", worst)
		if worst > bound {
			t.Errorf("lbd held %d bytes of the answer for a client that does not read (over %d)", worst, bound)
		}
	}
	t.Run("plain", func(t *testing.T) {
		big := bytes.Repeat([]byte("y"), 64<<10)
		be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
			for range 1024 {
				if _, err := w.Write(big); err != nil {
					return
				}
			}
		})
		d := htDataplane(t, withEngine(hlOneConfig(be.addr()), EngineLoop))
		check(t, d, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	})
	t.Run("answer while the request is sent", func(t *testing.T) {
		d := htDataplane(t, withEngine(hlOneConfig(rvSmallRcvBufServer(t)), EngineLoop))
		body := strings.Repeat("z", 64<<10)
		check(t, d, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n"+body)
	})
}

// Close with loop connections at every stage: idle, mid-head, delayed by the rate
// limit, in flight at a slow server, and streaming a large answer to a client that does
// not read. Close returns soon after its deadline; the one in flight is answered with
// Connection: close, the delayed one gets 503; nothing is left on the loops or in the
// accounting.
func TestHTTPLoopShutdownStages(t *testing.T) {
	skipShort(t, "waits for a shutdown deadline with connections at every stage")
	big := bytes.Repeat([]byte("b"), 64<<10)
	be := htServe(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(300 * time.Millisecond)
			io.WriteString(w, "slow")
		case "/big":
			for range 1024 {
				if _, err := w.Write(big); err != nil {
					return
				}
			}
		default:
			io.WriteString(w, "ok")
		}
	})
	cfg := withEngine(hlOneConfig(be.addr()), EngineLoop)
	cfg.Frontends[0].RateLimit = &RateLimit{Key: "header:X-Key", Rate: "1r/m", Burst: 5}
	d := New(Options{Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil))})
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	f := rvFrontend(t, d)
	active := d.metrics.connsActive.WithLabelValues("fe")

	idle := hlDial(t, d)
	if r := idle.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 {
		t.Fatalf("idle: %d", r.status)
	}
	partial := hlDial(t, d)
	partial.send("GET / HTTP/1.1\r\nHo")
	delayed := hlDial(t, d)
	if r := delayed.roundTrip("GET", "GET / HTTP/1.1\r\nHost: a\r\nX-Key: k\r\n\r\n"); r.status != 200 {
		t.Fatalf("first limited request: %d", r.status)
	}
	delayed.send("GET / HTTP/1.1\r\nHost: a\r\nX-Key: k\r\n\r\n") // waits a minute for its turn
	busy := hlDial(t, d)
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	stream := hlDial(t, d)
	stream.c.(*net.TCPConn).SetReadBuffer(4096)
	stream.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(100 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	loops := d.loops.running()
	if len(loops) == 0 {
		t.Fatal("no event loop runs")
	}
	start := time.Now()
	d.Close(ctx)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Close took %v", el)
	}
	for i, l := range loops {
		select {
		case <-l.Done():
		default:
			t.Errorf("loop %d runs after Close", i)
		}
	}
	if r := busy.read("GET"); r.status != 200 || r.body != "slow" || !r.close {
		t.Errorf("in flight: %d %q close=%v; want 200 \"slow\", closing", r.status, r.body, r.close)
	}
	busy.eof()
	if r := delayed.read("GET"); r.status != 503 {
		t.Errorf("delayed: %d %q; want 503", r.status, r.body)
	}
	idle.eof()
	partial.eof()
	rvReset(stream.c)
	eventually(t, "the loops emptied", 3*time.Second, func() bool {
		st := rvLoopsOf(loops)
		return metricValue(t, active) == 0 && rvLoopRegistry(f) == 0 && st.clients == 0 && st.timers == st.idle
	})
}

// A chunked body over maxBufferedBody, arriving in pieces after a request the loop
// served, with a request pipelined behind it: the loop hands the connection over with
// every byte it read, in order, and fasthttp serves both.
func TestHTTPLoopHandOverReplaysLargeChunkedBody(t *testing.T) {
	be := hlEcho(t)
	d := htDataplane(t, withEngine(hlOneConfig(be.addr), EngineLoop))
	before := hlCountsNow()
	c := hlDial(t, d)
	if r := c.roundTrip("GET", "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	var body, wire strings.Builder
	for i := range 40 {
		chunk := strings.Repeat(string(rune('a'+i%26)), 3000)
		body.WriteString(chunk)
		fmt.Fprintf(&wire, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	wire.WriteString("0\r\n\r\n")
	all := "POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + wire.String() +
		"GET /after HTTP/1.1\r\nHost: a\r\n\r\n"
	for i := 0; i < len(all); i += 7000 {
		c.send(all[i:min(i+7000, len(all))])
		time.Sleep(5 * time.Millisecond)
	}
	r := c.read("POST")
	if want := fmt.Sprintf("body %s\n", hlShort(body.String())); r.status != 200 || !strings.HasPrefix(r.body, "POST /big HTTP/1.1\n") || !strings.Contains(r.body, want) {
		t.Errorf("big: %d %q", r.status, hlShort(r.body))
	}
	if r := c.read("GET"); r.status != 200 || !strings.HasPrefix(r.body, "GET /after HTTP/1.1\n") {
		t.Errorf("after: %d %q", r.status, r.body)
	}
	hlExpect(t, EngineLoop, before, 1, 1)
}
