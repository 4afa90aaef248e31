package h1

import (
	"bufio"
	"errors"
	"io"
)

// MaxChunkSize bounds one chunk, to keep the arithmetic far from overflow.
const MaxChunkSize = 1 << 40

var (
	// ErrBadChunk: a malformed chunk-size line, or data not followed by its line end.
	ErrBadChunk = errors.New("malformed chunked encoding")
	// ErrChunkTooLarge: a chunk over MaxChunkSize.
	ErrChunkTooLarge = errors.New("chunk size too large")
	// ErrChunkLine: a chunk-size line, or a trailer section, over its limit.
	ErrChunkLine = errors.New("chunk-size line or trailer section too long")
)

// ChunkScanner finds the end of a chunked body (RFC 9112, section 7.1) in input that
// arrives in pieces split anywhere: the loop forwards the body as it comes, verbatim, and
// needs only to know where it ends. Chunk extensions are skipped; the trailer section is
// part of the body. Size lines and data ends take CRLF or a bare LF. ChunkReader decodes
// a body with one, for the fasthttp engine.
type ChunkScanner struct {
	state chunkState
	left  int64 // data bytes left in the current chunk
	line  int   // bytes of the current size or trailer line
	// trailer is the size of the trailer section so far.
	trailer  int
	maxLine  int // bound of a size line (extensions included) and of each trailer line
	maxTrail int // bound of the trailer section
	// inTrailer is set once the last chunk's size line has passed; trailerAt is then
	// where the trailer section starts in the input of the scan call it started in, and
	// -1 after that call.
	inTrailer bool
	trailerAt int
}

type chunkState uint8

const (
	chunkSize        chunkState = iota // hex digits of the size
	chunkSizeSpace                     // spaces after the size
	chunkExt                           // after ';' up to the end of line
	chunkSizeCR                        // CR after the size line, LF next
	chunkData                          // left bytes of data
	chunkDataEnd                       // CRLF after the data
	chunkDataLF                        // LF after the data's CR
	chunkTrailer                       // at the start of a trailer line
	chunkTrailerCR                     // a CR at the start of a trailer line: LF ends the body
	chunkTrailerLine                   // inside a trailer line
	chunkDone
)

// Bounds of a ChunkScanner, as fasthttp's 16 KiB server read buffer bounds a size line.
const (
	maxChunkLine    = 4 << 10
	maxChunkTrailer = 16 << 10
)

// NewChunkScanner returns a ChunkScanner at the start of a body, with bounds of 4 KiB on
// a size line and 16 KiB on the trailer section.
func NewChunkScanner() ChunkScanner {
	return ChunkScanner{maxLine: maxChunkLine, maxTrail: maxChunkTrailer}
}

// Scan consumes the bytes of p that belong to the body and returns how many: all of p
// until the body ends; then done is true and p[n:] is the next message.
func (c *ChunkScanner) Scan(p []byte) (n int, done bool, err error) {
	i := 0
	c.trailerAt = -1
	if c.state == chunkDone {
		return 0, true, nil
	}
	for i < len(p) {
		if c.state == chunkData { // the bulk: skip data without looking at it
			k := int(min(c.left, int64(len(p)-i)))
			i += k
			if c.left -= int64(k); c.left == 0 {
				c.state = chunkDataEnd
			}
			continue
		}
		b := p[i]
		i++
		switch c.state {
		case chunkSize:
			v, ok := unhex(b)
			switch {
			case ok:
				if c.left = c.left<<4 | int64(v); c.left > MaxChunkSize {
					return i, false, ErrChunkTooLarge
				}
				c.line++
			case c.line == 0:
				return i, false, ErrBadChunk
			case b == ' ' || b == '\t':
				c.state = chunkSizeSpace
			case b == ';':
				c.state = chunkExt
			case b == '\r':
				c.state = chunkSizeCR
			case b == '\n':
				c.sizeLineDone()
			default:
				return i, false, ErrBadChunk
			}
		case chunkSizeSpace:
			switch b {
			case ' ', '\t':
			case ';':
				c.state = chunkExt
			case '\r':
				c.state = chunkSizeCR
			case '\n':
				c.sizeLineDone()
			default:
				return i, false, ErrBadChunk
			}
		case chunkExt:
			switch b {
			case '\r':
				c.state = chunkSizeCR
			case '\n':
				c.sizeLineDone()
			}
		case chunkSizeCR:
			if b != '\n' {
				return i, false, ErrBadChunk
			}
			c.sizeLineDone()
		case chunkDataEnd:
			switch b {
			case '\r':
				c.state = chunkDataLF
			case '\n':
				c.state, c.line = chunkSize, 0
			default:
				return i, false, ErrBadChunk
			}
		case chunkDataLF:
			if b != '\n' {
				return i, false, ErrBadChunk
			}
			c.state, c.line = chunkSize, 0
		case chunkTrailer, chunkTrailerCR, chunkTrailerLine:
			c.trailer++
			switch {
			case b == '\n' && c.state != chunkTrailerLine: // the empty line: the body ends here
				c.state = chunkDone
				return i, true, nil
			case b == '\n':
				c.state, c.line = chunkTrailer, 0
			case b == '\r' && c.state == chunkTrailer:
				c.state = chunkTrailerCR
			default:
				c.state = chunkTrailerLine
				c.line++
			}
			if c.trailer > c.maxTrail || c.line > c.maxLine {
				return i, false, ErrChunkLine
			}
			continue
		}
		if c.state == chunkTrailer && !c.inTrailer {
			c.inTrailer, c.trailerAt = true, i
		}
		if c.state <= chunkSizeCR && c.state != chunkSize {
			c.line++
		}
		if c.line > c.maxLine {
			return i, false, ErrChunkLine
		}
	}
	return i, c.state == chunkDone, nil
}

// sizeLineDone moves on from a complete size line: to the data, or to the trailer
// section after the last chunk (size 0).
func (c *ChunkScanner) sizeLineDone() {
	c.line = 0
	if c.left == 0 {
		c.state = chunkTrailer
		return
	}
	c.state = chunkData
}

func unhex(b byte) (byte, bool) {
	switch {
	case b >= '0' && b <= '9':
		return b - '0', true
	case b >= 'a' && b <= 'f':
		return b - 'a' + 10, true
	case b >= 'A' && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

// Done reports whether the body has ended: the trailer section's final empty line has
// been scanned.
func (c *ChunkScanner) Done() bool { return c.state == chunkDone }

// TrailerAt tells where the trailer section begins: ok once the last chunk's size line
// has passed, and at the offset of the trailer in the input of the Scan call it began
// in, 0 in later calls.
func (c *ChunkScanner) TrailerAt() (at int, ok bool) {
	if !c.inTrailer {
		return 0, false
	}
	return max(c.trailerAt, 0), true
}

// ChunkReader decodes a chunked body from a *bufio.Reader with a ChunkScanner: the
// fasthttp engine's reader of a chunked response, so that it takes a body by the same
// grammar and bounds as the loop engine's scanner. It stops where the trailer section
// starts, for the caller to read (the fasthttp engine reads it into the response head).
type ChunkReader struct{ sc ChunkScanner }

// NewChunkReader returns a ChunkReader at the start of a body.
func NewChunkReader() ChunkReader { return ChunkReader{sc: NewChunkScanner()} }

// Read reads chunk data from br into p, which must not be empty: n > 0, or an error, or
// trailer true once the last chunk's size line has been read (the trailer section is
// next in br). The end of the stream within the body is io.ErrUnexpectedEOF.
func (r *ChunkReader) Read(br *bufio.Reader, p []byte) (n int, trailer bool, err error) {
	sc := &r.sc
	for {
		switch {
		case sc.inTrailer:
			return 0, true, nil
		case sc.state == chunkData: // the bulk, straight into p
			if int64(len(p)) > sc.left {
				p = p[:sc.left]
			}
			n, err = br.Read(p)
			if sc.left -= int64(n); sc.left == 0 {
				sc.state = chunkDataEnd
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, false, err
		}
		// Framing, a byte at a time: a size line, or the line end after data.
		b, err := br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, false, err
		}
		one := [1]byte{b}
		if _, _, err := sc.Scan(one[:]); err != nil {
			return 0, false, err
		}
	}
}

// AppendChunkSize appends n (at least 0) in lower-case hexadecimal, as a chunk-size
// line gives it.
func AppendChunkSize(b []byte, n int) []byte {
	const digits = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
