package h1

import (
	"errors"
	"io"
	"testing"
)

func TestBodyFramer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		f      BodyFramer
		in     string
		n      int
		done   bool
		err    error
		eofErr error
	}{
		{name: "none", f: NewBodyFramer(BodyNone, 0, 0), in: "GET", n: 0, done: true},
		{name: "length", f: NewBodyFramer(BodyLength, 3, 0), in: "abcGET", n: 3, done: true},
		{name: "length short", f: NewBodyFramer(BodyLength, 5, 0), in: "abc", n: 3, eofErr: io.ErrUnexpectedEOF},
		{name: "length over limit", f: NewBodyFramer(BodyLength, 5, 4), in: "abcde", n: 5, done: true, err: ErrBodyLimit},
		{name: "chunked", f: NewBodyFramer(BodyChunked, 0, 0), in: "1\r\na\r\n0\r\n\r\nX", n: 11, done: true},
		{name: "chunked cut", f: NewBodyFramer(BodyChunked, 0, 0), in: "1\r\na", n: 4, eofErr: io.ErrUnexpectedEOF},
		{name: "chunked over limit", f: NewBodyFramer(BodyChunked, 0, 8), in: "5\r\nabcde\r\n", n: 10, err: ErrBodyLimit},
		{name: "close", f: NewBodyFramer(BodyClose, 0, 0), in: "anything", n: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, done, err := tc.f.Scan([]byte(tc.in))
			if n != tc.n || done != tc.done || !errors.Is(err, tc.err) {
				t.Fatalf("got %d, %v, %v; want %d, %v, %v", n, done, err, tc.n, tc.done, tc.err)
			}
			if err == nil {
				if got := tc.f.EOF(); !errors.Is(got, tc.eofErr) {
					t.Fatalf("eof: got %v, want %v", got, tc.eofErr)
				}
			}
		})
	}
}

// scanBodySplit feeds in to f in pieces of size step, until an error or the end of the
// body, and returns the bytes consumed; at the end of in, what EOF says.
func scanBodySplit(f BodyFramer, in []byte, step int) (n int, done bool, err error) {
	for {
		p := in[:min(step, len(in))]
		k, d, err := f.Scan(p)
		n += k
		if err != nil || d {
			return n, d, err
		}
		if k != len(p) {
			return n, false, errors.New("consumed less than given without being done")
		}
		if in = in[len(p):]; len(in) == 0 {
			return n, false, f.EOF()
		}
	}
}

// FuzzBodyFramer checks that a BodyFramer of any kind consumes the same bytes however
// its input is split, stops a Content-Length body at its length, and bounds what it
// takes by its limit.
func FuzzBodyFramer(f *testing.F) {
	for _, tc := range chunkCases {
		f.Add(uint8(BodyChunked), uint16(0), uint16(0), []byte(tc.in), uint8(2))
	}
	f.Add(uint8(BodyLength), uint16(3), uint16(0), []byte("abcGET"), uint8(1))
	f.Add(uint8(BodyLength), uint16(5), uint16(4), []byte("abcde"), uint8(0))
	f.Add(uint8(BodyClose), uint16(0), uint16(6), []byte("anything"), uint8(3))
	f.Add(uint8(BodyNone), uint16(0), uint16(0), []byte("GET"), uint8(0))
	f.Fuzz(func(t *testing.T, kind uint8, length, limit uint16, in []byte, step uint8) {
		if len(in) > 64<<10 {
			return
		}
		k := BodyKind(kind % 4)
		newF := func() BodyFramer { return NewBodyFramer(k, int64(length), int64(limit)) }
		wn, wdone, werr := scanBodySplit(newF(), in, len(in)+1)
		sn, sdone, serr := scanBodySplit(newF(), in, int(step)+1)
		if errors.Is(werr, ErrBodyLimit) || errors.Is(serr, ErrBodyLimit) {
			// Over the limit: found at the end of the Scan call that crosses it, so
			// where the pieces end decides the bytes taken, and whether a framing
			// error further on shows first.
			for _, r := range []struct {
				n   int
				err error
			}{{wn, werr}, {sn, serr}} {
				if r.err == nil || errors.Is(r.err, ErrBodyLimit) && r.n <= int(limit) {
					t.Fatalf("limit %d: whole: %d, %v; split by %d: %d, %v", limit, wn, werr, int(step)+1, sn, serr)
				}
			}
			return
		}
		if wn != sn || wdone != sdone || !errors.Is(serr, werr) {
			t.Fatalf("whole: %d, %v, %v; split by %d: %d, %v, %v", wn, wdone, werr, int(step)+1, sn, sdone, serr)
		}
		if k == BodyLength && wn != min(int(length), len(in)) {
			t.Fatalf("took %d bytes of a body of length %d in %d", wn, length, len(in))
		}
		if errors.Is(werr, ErrBadChunk) || errors.Is(werr, ErrChunkTooLarge) || errors.Is(werr, ErrChunkLine) {
			return // the framing failed before the limit was looked at
		}
		if over := limit > 0 && wn > int(limit); over != errors.Is(werr, ErrBodyLimit) {
			t.Fatalf("took %d bytes with limit %d: err %v", wn, limit, werr)
		}
	})
}
