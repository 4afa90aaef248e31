package h1

import (
	"testing"

	"lbd/internal/testutil"
)

// TestFuzzCorpora: every fuzz target of this package keeps a corpus in testdata/fuzz.
func TestFuzzCorpora(t *testing.T) {
	testutil.RequireCorpus(t, "FuzzHeadScanner", "FuzzChunkScanner", "FuzzBodyFramer", "FuzzHeaderFields")
}

// TestAllocs checks that the scanners and the field helpers the loop engine calls on
// every request allocate nothing.
func TestAllocs(t *testing.T) {
	head := []byte("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-A\r\n\r\n")
	chunked := []byte("5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n")
	toks := make([][]byte, 0, 8)
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		s := NewHeadScanner(1 << 10)
		_, end, _ := s.Scan(head)
		sink += end + s.Start()
		sink += boolToInt(PlausibleHead(head))
		for _, f := range []BodyFramer{NewBodyFramer(BodyChunked, 0, 1<<10), NewBodyFramer(BodyLength, 3, 0)} {
			n, _, _ := f.Scan(chunked)
			at, _ := f.TrailerAt()
			sink += n + at
			if f.EOF() == nil {
				sink++
			}
		}
		for r := head; len(r) > 0; {
			var line []byte
			line, r = NextLine(r)
			if k, v, ok := SplitHeader(line); ok {
				sink += int(KindOf(k))
				toks = AppendTokens(toks[:0], v)
				sink += boolToInt(HasToken(toks, []byte("x-a")) || EqualFold(k, "host"))
			}
		}
		var hex [16]byte
		sink += len(AppendChunkSize(hex[:0], 0xabcdef))
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
	_ = sink
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
