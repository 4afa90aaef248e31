package h1

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// scanHeadSplit feeds in to a HeadScanner in pieces of size step (the whole input for 0)
// and returns what it found once the input is all in, or at the first error or end.
func scanHeadSplit(in string, limit, step int) (start, end int, err error) {
	s := NewHeadScanner(limit)
	if step <= 0 {
		step = len(in) + 1
	}
	for n := 0; ; {
		n = min(n+step, len(in))
		start, end, err = s.Scan([]byte(in[:n]))
		if err != nil || end > 0 || n == len(in) {
			return start, end, err
		}
	}
}

var headCases = []struct {
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
	{name: "over the limit", in: "GET / HTTP/1.1\r\n\r\n", limit: 17, err: ErrHeadTooLarge},
	{name: "limit reached, no end", in: "GET / HTTP/1.1\r\nHost: aaaa", limit: 20, err: ErrHeadTooLarge},
	{name: "under the limit, no end", in: "GET / HTTP/1.1\r\nHo", limit: 20},
	{name: "a lone cr is no line end", in: "GET / HTTP/1.1\r\r\rX: y\r\n\r\n", end: 25},
}

func TestHeadScanner(t *testing.T) {
	for _, tc := range headCases {
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
	s := NewHeadScanner(0)
	for n := 1; n <= len(in); n++ {
		_, end, err := s.Scan(in[:n])
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

// refHead is a plain reading of where a head ends: the first empty line after a
// non-empty one (a line's CRs do not count), within limit bytes.
func refHead(in []byte, limit int) (start, end int, err error) {
	begun, lineStart := false, 0
	for i, b := range in {
		if limit > 0 && i >= limit {
			return 0, 0, ErrHeadTooLarge
		}
		if b != '\n' {
			continue
		}
		empty := len(bytes.ReplaceAll(in[lineStart:i], []byte("\r"), nil)) == 0
		switch {
		case !empty:
			begun = true
		case !begun:
			start = i + 1
		default:
			return start, i + 1, nil
		}
		lineStart = i + 1
	}
	if limit > 0 && len(in) >= limit {
		return 0, 0, ErrHeadTooLarge
	}
	return 0, 0, nil
}

var plausibleCases = []struct {
	in   string
	want bool
}{
	{"", true},
	{"G", true},
	{"GET / HTTP/1.1", true},
	{"GET / HTTP/1.1\r", true},
	{"GET / HTTP/1.1\r\n", true},
	{"GET / HTTP/1.0\nHost: a\n", true},
	{"GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r", true},
	{"get / HTTP/1.1\r\n", false},
	{"G-T / HTTP/1.1\r\n", false},
	{"GET /  HTTP/1.1\r\n", false},
	{"GET / HTTP/1.2\r\n", false},
	{"GET / HTTP/2.0\r\n", false},
	{"GET /\r\n", false},
	{" GET / HTTP/1.1\r\n", false},
	{"GET /\x7f HTTP/1.1\r\n", false},
	{"GET / HTTP/1.1\rX", false},
	{"GET / HTTP/1.1\r\nHost: a\rb", false},
	{"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1\r\n", false},
}

func TestPlausibleHead(t *testing.T) {
	for _, tc := range plausibleCases {
		if got := PlausibleHead([]byte(tc.in)); got != tc.want {
			t.Errorf("PlausibleHead(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzHeadScanner checks that a HeadScanner finds the end refHead finds, however the
// input is split, and that PlausibleHead, once false for a prefix of the input, stays
// false for every longer one.
func FuzzHeadScanner(f *testing.F) {
	for _, tc := range headCases {
		f.Add([]byte(tc.in), uint16(tc.limit), uint8(3))
	}
	for _, tc := range plausibleCases {
		f.Add([]byte(tc.in), uint16(0), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, limit uint16, step uint8) {
		if len(in) > 16<<10 {
			return
		}
		ws, we, werr := refHead(in, int(limit))
		for _, st := range []int{0, int(step) + 1} {
			s, e, err := scanHeadSplit(string(in), int(limit), st)
			if e != we || e > 0 && s != ws || !errors.Is(err, werr) {
				t.Fatalf("step %d: got start %d end %d err %v, want start %d end %d err %v", st, s, e, err, ws, we, werr)
			}
		}
		if len(in) > 2<<10 {
			return
		}
		for n := 0; n <= len(in); n++ {
			if !PlausibleHead(in[:n]) {
				for m := n + 1; m <= len(in); m++ {
					if PlausibleHead(in[:m]) {
						t.Fatalf("implausible at %d bytes, plausible at %d", n, m)
					}
				}
				break
			}
		}
	})
}
