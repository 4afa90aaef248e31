package dataplane

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// scanHeadSplit feeds in to a headScanner in pieces of size step (the whole input for 0)
// and returns what it found once the input is all in, or at the first error or end.
func scanHeadSplit(in string, limit, step int) (start, end int, err error) {
	s := newHeadScanner(limit)
	if step <= 0 {
		step = len(in) + 1
	}
	for n := 0; ; {
		n = min(n+step, len(in))
		start, end, err = s.scan([]byte(in[:n]))
		if err != nil || end > 0 || n == len(in) {
			return start, end, err
		}
	}
}

func TestHeadScanner(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         string
		limit      int
		start, end int // end 0: not complete
		err        error
	}{
		{name: "crlf", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", end: 27},
		{name: "bare lf", in: "GET / HTTP/1.1\nHost: a\n\nX", end: 24},
		{name: "mixed", in: "GET / HTTP/1.1\r\nHost: a\n\r\n", end: 26},
		{name: "no headers", in: "GET / HTTP/1.0\r\n\r\n", end: 18},
		{name: "leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\n\r\n", start: 4, end: 22},
		{name: "incomplete", in: "GET / HTTP/1.1\r\nHost: a\r\n"},
		{name: "incomplete cr", in: "GET / HTTP/1.1\r\nHost: a\r\n\r"},
		{name: "empty", in: ""},
		{name: "only empty lines", in: "\r\n\n\r\n"},
		{name: "exactly the limit", in: "GET / HTTP/1.1\r\n\r\n", limit: 18, end: 18},
		{name: "over the limit", in: "GET / HTTP/1.1\r\n\r\n", limit: 17, err: errHeadTooLarge},
		{name: "limit reached, no end", in: "GET / HTTP/1.1\r\nHost: aaaa", limit: 20, err: errHeadTooLarge},
		{name: "under the limit, no end", in: "GET / HTTP/1.1\r\nHo", limit: 20},
		{name: "a lone cr is no line end", in: "GET / HTTP/1.1\r\r\rX: y\r\n\r\n", end: 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{0, 1, 2, 3, 7} {
				start, end, err := scanHeadSplit(tc.in, tc.limit, step)
				if start != tc.start && end > 0 || end != tc.end || !errors.Is(err, tc.err) {
					t.Errorf("step %d: got start %d end %d err %v, want start %d end %d err %v",
						step, start, end, err, tc.start, tc.end, tc.err)
				}
			}
		})
	}
}

// TestHeadScannerLooksOnce checks that a head arriving a byte at a time is scanned in
// linear time: the scanner resumes where it stopped.
func TestHeadScannerLooksOnce(t *testing.T) {
	in := []byte("GET / HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 1000) + "\r\n")
	s := newHeadScanner(0)
	for n := 1; n <= len(in); n++ {
		_, end, err := s.scan(in[:n])
		if err != nil {
			t.Fatal(err)
		}
		if end > 0 {
			if n != len(in) || end != len(in) {
				t.Fatalf("end %d at %d bytes, want %d", end, n, len(in))
			}
			return
		}
		if s.n != n {
			t.Fatalf("looked at %d bytes of %d", s.n, n)
		}
	}
	t.Fatal("no end found")
}

var chunkCases = []struct {
	name string
	in   string
	n    int // bytes of the body; -1: incomplete
	err  error
}{
	{name: "one chunk", in: "5\r\nhello\r\n0\r\n\r\nNEXT", n: 15},
	{name: "two chunks", in: "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", n: 20},
	{name: "hex sizes", in: "a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", n: 35},
	{name: "empty body", in: "0\r\n\r\nGET", n: 5},
	{name: "bare lf", in: "3\nabc\n0\n\n", n: 9},
	{name: "extension", in: "3;name=value\r\nabc\r\n0;x\r\n\r\n", n: 26},
	{name: "spaces before extension", in: "3 \t;x\r\nabc\r\n0\r\n\r\n", n: 17},
	{name: "trailers", in: "3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nrest", n: 31},
	{name: "data holding crlf", in: "4\r\n\r\n\r\n\r\n0\r\n\r\n", n: 14},
	{name: "incomplete size", in: "3", n: -1},
	{name: "incomplete data", in: "3\r\nab", n: -1},
	{name: "incomplete trailer", in: "0\r\nX: y\r\n", n: -1},
	{name: "no size", in: "\r\nabc", err: errBadChunk},
	{name: "bad size", in: "3x\r\nabc", err: errBadChunk},
	{name: "digit after space", in: "3 4\r\n", err: errBadChunk},
	{name: "data too long", in: "3\r\nabcd\r\n", err: errBadChunk},
	{name: "cr without lf", in: "3\rabc", err: errBadChunk},
	{name: "too large", in: "20000000000\r\n", err: errChunkTooLarge},
	{name: "long extension", in: "3;" + strings.Repeat("x", chunkMaxLine) + "\r\n", err: errChunkLine},
	{name: "long trailer", in: "0\r\n" + strings.Repeat("X-A: b\r\n", chunkMaxTrailer/8+1) + "\r\n", err: errChunkLine},
}

// scanChunksSplit feeds in to a chunkScanner in pieces of size step.
func scanChunksSplit(in string, step int) (int, error) {
	c := newChunkScanner()
	total := 0
	for len(in) > 0 {
		p := in[:min(step, len(in))]
		n, done, err := c.scan([]byte(p))
		total += n
		if err != nil {
			return total, err
		}
		if done {
			return total, nil
		}
		if n != len(p) {
			return total, errors.New("consumed less than given without being done")
		}
		in = in[len(p):]
	}
	return -1, nil
}

func TestChunkScanner(t *testing.T) {
	for _, tc := range chunkCases {
		t.Run(tc.name, func(t *testing.T) {
			for step := 1; step <= len(tc.in); step++ {
				if step > 64 {
					step = len(tc.in) // and the whole input at once
				}
				n, err := scanChunksSplit(tc.in, step)
				if !errors.Is(err, tc.err) || tc.err == nil && n != tc.n {
					t.Fatalf("step %d: got %d, %v; want %d, %v", step, n, err, tc.n, tc.err)
				}
			}
		})
	}
}

// refChunked finds the end of a chunked body with the fasthttp path's own readers
// (readChunkSize, readCRLF, fasthttp's ReadTrailer): the oracle of the fuzz test.
func refChunked(in []byte) (n int, ok bool) {
	br := bufio.NewReaderSize(bytes.NewReader(in), 1<<20)
	for {
		size, err := readChunkSize(br)
		if err != nil {
			return 0, false
		}
		if size == 0 {
			break
		}
		if _, err := br.Discard(int(size)); err != nil {
			return 0, false
		}
		if err := readCRLF(br); err != nil {
			return 0, false
		}
	}
	var h fasthttp.ResponseHeader
	if err := h.ReadTrailer(br); err != nil {
		return 0, false
	}
	return len(in) - br.Buffered(), true
}

// FuzzChunkScanner checks that any split of the input finds the same end as one read,
// and the same as the fasthttp path's readers where those accept the input.
func FuzzChunkScanner(f *testing.F) {
	for _, tc := range chunkCases {
		f.Add([]byte(tc.in), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		if len(in) > 64<<10 {
			return
		}
		whole, werr := scanChunksSplit(string(in), len(in)+1)
		split, serr := scanChunksSplit(string(in), int(step)+1)
		if whole != split || (werr == nil) != (serr == nil) {
			t.Fatalf("whole: %d, %v; split by %d: %d, %v", whole, werr, int(step)+1, split, serr)
		}
		if werr != nil || whole < 0 {
			return
		}
		if n, ok := refChunked(in); ok && n != whole {
			t.Fatalf("scanner ends the body at %d, fasthttp's readers at %d", whole, n)
		}
	})
}

func TestBodyFramer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		f      bodyFramer
		in     string
		n      int
		done   bool
		err    error
		eofErr error
	}{
		{name: "none", f: newBodyFramer(bodyNone, 0, 0), in: "GET", n: 0, done: true},
		{name: "length", f: newBodyFramer(bodyLength, 3, 0), in: "abcGET", n: 3, done: true},
		{name: "length short", f: newBodyFramer(bodyLength, 5, 0), in: "abc", n: 3, eofErr: errUnexpectedClose},
		{name: "length over limit", f: newBodyFramer(bodyLength, 5, 4), in: "abcde", n: 5, done: true, err: errBodyLimit},
		{name: "chunked", f: newBodyFramer(bodyChunked, 0, 0), in: "1\r\na\r\n0\r\n\r\nX", n: 11, done: true},
		{name: "chunked cut", f: newBodyFramer(bodyChunked, 0, 0), in: "1\r\na", n: 4, eofErr: errUnexpectedClose},
		{name: "chunked over limit", f: newBodyFramer(bodyChunked, 0, 8), in: "5\r\nabcde\r\n", n: 10, err: errBodyLimit},
		{name: "close", f: newBodyFramer(bodyClose, 0, 0), in: "anything", n: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, done, err := tc.f.scan([]byte(tc.in))
			if n != tc.n || done != tc.done || !errors.Is(err, tc.err) {
				t.Fatalf("got %d, %v, %v; want %d, %v, %v", n, done, err, tc.n, tc.done, tc.err)
			}
			if err == nil {
				if got := tc.f.eof(); !errors.Is(got, tc.eofErr) {
					t.Fatalf("eof: got %v, want %v", got, tc.eofErr)
				}
			}
		})
	}
}
