//go:build linux

package dataplane

// FuzzServerResponses: the mirror of FuzzHTTPEngines on the server side. The fuzzer
// supplies the bytes a server answers (status line, headers, framing, body, trailers,
// garbage, an early close); a raw server on loopback writes them to every request for
// /fuzz and then closes the connection. A client sends the request for /fuzz (GET or
// HEAD) and, pipelined after it, a GET for /next, which the server answers well (and
// with Connection: close, so that no server connection is pooled across inputs), to a
// frontend on the loop engine and to one on fasthttp. What the clients get must agree:
// the responses (status, end-to-end headers but Date, body, trailers, Connection:
// close), and how the connection ends, which says whether it stayed usable after the
// fuzzed answer. The comparison and the harness are FuzzHTTPEngines' (fzStartWith,
// fzExchange, fzCompare).
//
// Differences let pass, as documented (docs/design-http-loop.md, step 5 and the
// failures after it): an answer that goes wrong after its head (cut by the server's
// close, a bad chunk, a bad trailer). The loop engine has sent the server's head by
// then and cuts the client connection; the fasthttp engine reads a small body whole
// before it answers, so it answers 502 instead, or, for a streamed body, closes the
// client connection without an answer. See frsNormalize.
//
// To fuzz (bounded; loopback only):
//
//	go test ./dataplane/ -run '^$' -fuzz FuzzServerResponses -fuzztime 60s

import (
	"bufio"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// frsNext is the server's answer to the request after the fuzzed one.
const frsNext = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnext"

// frsServe answers a request for /next with frsNext and any other with answer's
// bytes, then returns (and the connection is closed).
func frsServe(answer *atomic.Pointer[[]byte]) func(c net.Conn) {
	return func(c net.Conn) {
		r, err := hlReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		if r.target == "/next" {
			c.Write([]byte(frsNext))
			return
		}
		c.Write(*answer.Load())
	}
}

// frsInput is the client's side of an input: the request for /fuzz (HEAD when head),
// then a GET for /next, on one connection kept open.
func frsInput(head bool) fzInput {
	m := "GET"
	if head {
		m = "HEAD"
	}
	return fzInput{
		bytes:    []byte(m + " /fuzz HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n"),
		methods:  []string{m, "GET"},
		keepOpen: true,
	}
}

func FuzzServerResponses(f *testing.F) {
	var (
		once   sync.Once
		env    *fzEnv
		answer atomic.Pointer[[]byte]
	)
	answer.Store(new([]byte))
	f.Cleanup(func() {
		if env != nil {
			env.close()
		}
	})
	for _, s := range frsSeeds {
		f.Add(s.head, []byte(s.answer))
	}
	f.Fuzz(func(t *testing.T, head bool, b []byte) {
		if len(b) > 8<<10 {
			return
		}
		once.Do(func() { env = fzStartWith(frsServe(&answer)) })
		if env.err != nil {
			t.Fatal(env.err)
		}
		answer.Store(&b)
		in := frsInput(head)
		var fast, loop fzOutcome
		var wg sync.WaitGroup
		wg.Go(func() { fast = fzExchange(env.fast.Addr("fe").String(), in, len(in.methods)) })
		wg.Go(func() { loop = fzExchange(env.loop.Addr("fe").String(), in, len(in.methods)) })
		wg.Wait()
		fast, loop = frsNormalize(fast, loop)
		fzCompare(t, fzInput{bytes: b, keepOpen: true}, fast, loop)
	})
}

// frsCut is how an answer cut after its head ends, on either engine, once normalized.
const frsCut = "cut after the server's head"

// frsNormalize makes the documented difference the same on both sides: when the loop
// cut the client connection in the middle of the response at index i, the fasthttp
// engine may have closed the connection with no response at i, or answered 502 at i
// (and gone on); both become the responses before i and frsCut. Everything before i
// must still agree.
//
// When both cut the response at the same index, the body bytes each sent before the
// cut may differ (they depend on where reads and writes fall; the loop writes what one
// event produces at once, and drops it when the event ends in a failure): the partial
// bodies are not compared, the head is.
func frsNormalize(fast, loop fzOutcome) (fzOutcome, fzOutcome) {
	const cut = "closed in the middle of a response"
	if n := len(loop.resps); fast.end == cut && loop.end == cut && n > 0 && len(fast.resps) == n {
		fast.resps, loop.resps = slices.Clone(fast.resps), slices.Clone(loop.resps)
		for _, rs := range [][]*hlResp{fast.resps, loop.resps} {
			r := *rs[n-1]
			r.body, r.trailer = "(cut)", nil
			rs[n-1] = &r
		}
		return fast, loop
	}
	if loop.end != "closed in the middle of a response" || len(loop.resps) == 0 {
		return fast, loop
	}
	i := len(loop.resps) - 1
	switch {
	case len(fast.resps) == i && fast.end == "closed":
	case len(fast.resps) > i && fast.resps[i].status == 502:
	default:
		return fast, loop
	}
	fast.resps, fast.end = fast.resps[:i], frsCut
	loop.resps, loop.end = loop.resps[:i], frsCut
	return fast, loop
}

// frsSeeds are well-formed and malformed answers of a server.
var frsSeeds = []struct {
	head   bool
	answer string
}{
	{false, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"},
	{true, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"},
	{true, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
	{false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: t\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: t\r\nX-U: u\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 9\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
	{false, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
	{false, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{false, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"},
	{false, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"},
	{false, "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"},
	{false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"},
	{false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected"},
	{false, "HTTP/1.0 200 OK\r\n\r\nuntil the close"},
	{false, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the close"},
	{false, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
	{false, "HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
	{false, "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n"},
	{false, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"},
	{false, "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 5000) + "\r\nContent-Length: 2\r\n\r\nok"},
	{false, "HTTP/1.1 200 OK\r\nContent-Len"},
	{false, "garbage\r\n\r\n"},
	{false, ""},
}
