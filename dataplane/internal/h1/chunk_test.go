package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

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
	{name: "no size", in: "\r\nabc", err: ErrBadChunk},
	{name: "bad size", in: "3x\r\nabc", err: ErrBadChunk},
	{name: "digit after space", in: "3 4\r\n", err: ErrBadChunk},
	{name: "data too long", in: "3\r\nabcd\r\n", err: ErrBadChunk},
	{name: "cr without lf", in: "3\rabc", err: ErrBadChunk},
	{name: "too large", in: "20000000000\r\n", err: ErrChunkTooLarge},
	{name: "long extension", in: "3;" + strings.Repeat("x", maxChunkLine) + "\r\n", err: ErrChunkLine},
	{name: "long trailer", in: "0\r\n" + strings.Repeat("X-A: b\r\n", maxChunkTrailer/8+1) + "\r\n", err: ErrChunkLine},
}

// scanChunksSplit feeds in to a ChunkScanner in pieces of size step.
func scanChunksSplit(in string, step int) (int, error) {
	c := NewChunkScanner()
	total := 0
	for len(in) > 0 {
		p := in[:min(step, len(in))]
		n, done, err := c.Scan([]byte(p))
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

// refDecode decodes a chunked body with plain readers (readChunkSize, readCRLF,
// fasthttp's ReadTrailer), the oracle of the fuzz test, and returns where it ends and
// the body's data.
func refDecode(in []byte) (n int, data []byte, ok bool) {
	br := bufio.NewReaderSize(bytes.NewReader(in), 1<<20)
	for {
		size, err := readChunkSize(br)
		if err != nil {
			return 0, nil, false
		}
		if size == 0 {
			break
		}
		chunk := make([]byte, size)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return 0, nil, false
		}
		data = append(data, chunk...)
		if err := readCRLF(br); err != nil {
			return 0, nil, false
		}
	}
	var h fasthttp.ResponseHeader
	if err := h.ReadTrailer(br); err != nil {
		return 0, nil, false
	}
	return len(in) - br.Buffered(), data, true
}

// readChunkReader decodes in with a ChunkReader, reading into pieces of step bytes, and
// fasthttp's ReadTrailer, as the fasthttp engine's bodyStream does.
func readChunkReader(in []byte, step int) (n int, data []byte, err error) {
	br := bufio.NewReaderSize(bytes.NewReader(in), 1<<20) // as the oracle's
	r := NewChunkReader()
	p := make([]byte, step)
	for {
		k, trailer, err := r.Read(br, p)
		data = append(data, p[:k]...)
		if err != nil {
			return 0, data, err
		}
		if trailer {
			break
		}
	}
	var h fasthttp.ResponseHeader
	if err := h.ReadTrailer(br); err != nil {
		return 0, data, err
	}
	return len(in) - br.Buffered(), data, nil
}

// ChunkReader decodes what the plain readers decode, and fails where they fail, however
// the caller's buffer splits the data.
func TestChunkReader(t *testing.T) {
	for _, tc := range chunkCases {
		t.Run(tc.name, func(t *testing.T) {
			refN, refData, ok := refDecode([]byte(tc.in))
			for _, step := range []int{1, 2, 3, 7, 64} {
				n, data, err := readChunkReader([]byte(tc.in), step)
				if ok != (err == nil) || ok && (n != refN || !bytes.Equal(data, refData)) {
					t.Fatalf("step %d: got %d %q %v; the plain readers: %d %q ok=%v", step, n, data, err, refN, refData, ok)
				}
			}
		})
	}
}

// FuzzChunkScanner checks that any split of the input finds the same end as one read,
// and the same as the plain readers where those accept the input; and that ChunkReader
// decodes what they decode.
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
		n, data, ok := refDecode(in)
		if ok && n != whole {
			t.Fatalf("scanner ends the body at %d, the plain readers at %d", whole, n)
		}
		// ChunkReader takes what the scanner takes, and decodes it as the plain readers.
		rn, rdata, rerr := readChunkReader(in, int(step)+1)
		if ok && (rerr != nil || rn != n || !bytes.Equal(rdata, data)) {
			t.Fatalf("ChunkReader: %d %q %v; the plain readers: %d %q", rn, rdata, rerr, n, data)
		}
		if rerr == nil && rn != whole {
			t.Fatalf("ChunkReader ends the body at %d, the scanner at %d", rn, whole)
		}
	})
}

func TestChunkScannerTrailerAt(t *testing.T) {
	c := NewChunkScanner()
	if _, ok := c.TrailerAt(); ok {
		t.Fatal("TrailerAt ok before any input")
	}
	// The trailer starts at offset 3 of the second piece.
	pieces := []string{"3\r\nabc\r\n", "0\r\nX-A: b\r\n", "\r\n"}
	wantAt := []int{-1, 3, 0}
	for i, p := range pieces {
		_, done, err := c.Scan([]byte(p))
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		at, ok := c.TrailerAt()
		if want := wantAt[i]; ok != (want >= 0) || ok && at != want {
			t.Fatalf("piece %d: TrailerAt = %d, %v; want %d", i, at, ok, want)
		}
		if done != (i == len(pieces)-1) || c.Done() != done {
			t.Fatalf("piece %d: done %v, Done() %v", i, done, c.Done())
		}
	}
}

func TestReadChunkSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		size int64
		err  error
	}{
		{name: "crlf", in: "1a\r\n", size: 0x1a},
		{name: "bare lf", in: "F\n", size: 15},
		{name: "upper and lower", in: "aB0\r\n", size: 0xab0},
		{name: "extension", in: "3;name=value\r\n", size: 3},
		{name: "spaces before extension", in: "3 \t;x\r\n", size: 3},
		{name: "trailing spaces", in: "3  \r\n", size: 3},
		{name: "zero", in: "0\r\n", size: 0},
		{name: "no digits", in: "\r\n", err: ErrBadChunk},
		{name: "bad digit", in: "3x\r\n", err: ErrBadChunk},
		{name: "digit after space", in: "3 4\r\n", err: ErrBadChunk},
		{name: "largest", in: "10000000000\r\n", size: MaxChunkSize},
		{name: "too large", in: "10000000001\r\n", err: ErrChunkTooLarge},
		{name: "no line end", in: "3", err: io.ErrUnexpectedEOF},
		{name: "longer than the buffer", in: strings.Repeat("0", 32) + "\r\n", err: ErrBadChunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size, err := readChunkSize(bufio.NewReaderSize(strings.NewReader(tc.in), 16))
			if !errors.Is(err, tc.err) || err == nil && size != tc.size {
				t.Fatalf("got %d, %v; want %d, %v", size, err, tc.size, tc.err)
			}
		})
	}
}

func TestReadCRLF(t *testing.T) {
	for _, tc := range []struct {
		in  string
		err error
	}{
		{in: "\r\n"},
		{in: "\n"},
		{in: "", err: io.ErrUnexpectedEOF},
		{in: "\r", err: io.ErrUnexpectedEOF},
		{in: "\rx", err: ErrBadChunk},
		{in: "x", err: ErrBadChunk},
	} {
		if err := readCRLF(bufio.NewReader(strings.NewReader(tc.in))); !errors.Is(err, tc.err) {
			t.Errorf("%q: got %v, want %v", tc.in, err, tc.err)
		}
	}
}

func TestAppendChunkSize(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 15, 16, 255, 4096, 1<<40 - 1, 1<<63 - 1} {
		got := string(AppendChunkSize([]byte("x"), n))
		if want := "x" + strconv.FormatInt(int64(n), 16); got != want {
			t.Errorf("AppendChunkSize(%d) = %q, want %q", n, got, want)
		}
		r := bufio.NewReader(strings.NewReader(got[1:] + "\r\n"))
		if size, err := readChunkSize(r); n <= MaxChunkSize && (err != nil || size != int64(n)) {
			t.Errorf("readChunkSize(AppendChunkSize(%d)) = %d, %v", n, size, err)
		}
	}
}

// readChunkSize, the oracle's, reads a chunk-size line, "1a2b[;ext]\r\n" (or with a
// bare LF), and returns the size. A line longer than br's buffer is ErrBadChunk, the end of the
// stream io.ErrUnexpectedEOF.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		} else if err == bufio.ErrBufferFull {
			err = ErrBadChunk
		}
		return 0, err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	var size int64
	i := 0
	for ; i < len(line); i++ {
		v, ok := unhex(line[i])
		if !ok {
			break
		}
		size = size<<4 | int64(v)
		if size > MaxChunkSize {
			return 0, ErrChunkTooLarge
		}
	}
	if i == 0 {
		return 0, ErrBadChunk
	}
	for ; i < len(line); i++ {
		switch line[i] {
		case ' ', '\t':
			continue
		case ';':
			return size, nil // a chunk extension, ignored
		}
		return 0, ErrBadChunk
	}
	return size, nil
}

// readCRLF, the oracle's, reads the line end after a chunk's data: CRLF or a bare LF.
func readCRLF(br *bufio.Reader) error {
	c, err := br.ReadByte()
	if err == nil && c == '\r' {
		c, err = br.ReadByte()
	}
	switch {
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	case err != nil:
		return err
	case c != '\n':
		return ErrBadChunk
	}
	return nil
}
