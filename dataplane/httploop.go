package dataplane

// Incremental HTTP/1.1 framing for the event-loop http path (docs/design-http-loop.md).
// A loop reads whatever a socket holds and must know, without blocking and without
// looking at a byte twice, where a head ends and where a body ends. Nothing here does I/O
// or allocates per call; httploop_linux.go drives it.

import "errors"

var (
	// errHeadTooLarge: no end of head within the limit (the client gets 431).
	errHeadTooLarge = errors.New("head larger than the limit")
	// errChunkLine: a chunk-size line, or a trailer section, over its limit.
	errChunkLine = errors.New("chunk-size line or trailer section too long")
	// errBodyLimit: a request body over max_body_bytes (the client gets 413).
	errBodyLimit = errors.New("body larger than the limit")
)

// headScanner finds the end of a message head in an input that grows between calls. It
// remembers how far it has looked, so each byte is looked at once however the head
// arrives. Lines end in CRLF or a bare LF; empty lines before the first line are skipped
// (RFC 9112, section 2.2), and count against the limit.
type headScanner struct {
	limit int // the largest head, final empty line included; 0: none
	n     int // bytes looked at
	start int // where the head begins, after leading empty lines
	// line is how many bytes other than CR the current line has so far.
	line  int
	begun bool // a non-empty line has been seen
}

func newHeadScanner(limit int) headScanner { return headScanner{limit: limit} }

// scan looks at the bytes of buf it has not seen: buf is the whole input so far, the
// bytes seen in earlier calls unchanged. It returns the head as buf[start:end] once its
// final empty line is in buf, end 0 while it is not, and errHeadTooLarge once the limit
// has passed without an end.
func (s *headScanner) scan(buf []byte) (start, end int, err error) {
	stop := len(buf)
	if s.limit > 0 && stop > s.limit {
		stop = s.limit
	}
	for i := s.n; i < stop; i++ {
		switch buf[i] {
		case '\n':
			switch {
			case s.line > 0:
				s.line = 0
			case !s.begun:
				s.start = i + 1
			default:
				s.n = i + 1
				return s.start, i + 1, nil
			}
		case '\r':
		default:
			s.begun = true
			s.line++
		}
	}
	s.n = stop
	if s.limit > 0 && stop == s.limit && len(buf) >= s.limit {
		return 0, 0, errHeadTooLarge
	}
	return 0, 0, nil
}

// chunkScanner finds the end of a chunked body (RFC 9112, section 7.1) in input that
// arrives in pieces split anywhere: the loop forwards the body as it comes, verbatim, and
// needs only to know where it ends. Chunk extensions are skipped; the trailer section is
// part of the body. Size lines and data ends take CRLF or a bare LF, as readChunkSize and
// readCRLF do on the fasthttp path.
type chunkScanner struct {
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

// Bounds of a chunkScanner, as fasthttp's 16 KiB server read buffer bounds a size line.
const (
	chunkMaxLine    = 4 << 10
	chunkMaxTrailer = 16 << 10
)

func newChunkScanner() chunkScanner {
	return chunkScanner{maxLine: chunkMaxLine, maxTrail: chunkMaxTrailer}
}

// scan consumes the bytes of p that belong to the body and returns how many: all of p
// until the body ends; then done is true and p[n:] is the next message.
func (c *chunkScanner) scan(p []byte) (n int, done bool, err error) {
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
				if c.left = c.left<<4 | int64(v); c.left > maxChunkSize {
					return i, false, errChunkTooLarge
				}
				c.line++
			case c.line == 0:
				return i, false, errBadChunk
			case b == ' ' || b == '\t':
				c.state = chunkSizeSpace
			case b == ';':
				c.state = chunkExt
			case b == '\r':
				c.state = chunkSizeCR
			case b == '\n':
				c.sizeLineDone()
			default:
				return i, false, errBadChunk
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
				return i, false, errBadChunk
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
				return i, false, errBadChunk
			}
			c.sizeLineDone()
		case chunkDataEnd:
			switch b {
			case '\r':
				c.state = chunkDataLF
			case '\n':
				c.state, c.line = chunkSize, 0
			default:
				return i, false, errBadChunk
			}
		case chunkDataLF:
			if b != '\n' {
				return i, false, errBadChunk
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
				return i, false, errChunkLine
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
			return i, false, errChunkLine
		}
	}
	return i, c.state == chunkDone, nil
}

// sizeLineDone moves on from a complete size line: to the data, or to the trailer
// section after the last chunk (size 0).
func (c *chunkScanner) sizeLineDone() {
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

// bodyKind is how a message's body is framed.
type bodyKind uint8

const (
	bodyNone    bodyKind = iota // no body (GET without length, HEAD answers, 204, 304, 1xx)
	bodyLength                  // Content-Length
	bodyChunked                 // Transfer-Encoding: chunked
	bodyClose                   // a response without length: until the server closes
)

// bodyFramer follows one body through the bytes that carry it.
type bodyFramer struct {
	kind   bodyKind
	left   int64 // bodyLength: bytes left
	chunks chunkScanner
	// limit bounds the body's bytes as they arrive (framing included); 0: none.
	limit int64
	n     int64 // bytes consumed
}

func newBodyFramer(kind bodyKind, length, limit int64) bodyFramer {
	f := bodyFramer{kind: kind, left: length, limit: limit}
	if kind == bodyChunked {
		f.chunks = newChunkScanner()
	}
	return f
}

// scan consumes the bytes of p that belong to the body, as chunkScanner.scan does.
func (f *bodyFramer) scan(p []byte) (n int, done bool, err error) {
	switch f.kind {
	case bodyNone:
		return 0, true, nil
	case bodyLength:
		n = int(min(f.left, int64(len(p))))
		f.left -= int64(n)
		done = f.left == 0
	case bodyChunked:
		n, done, err = f.chunks.scan(p)
	case bodyClose:
		n = len(p)
	}
	f.n += int64(n)
	if err == nil && f.limit > 0 && f.n > f.limit {
		err = errBodyLimit
	}
	return n, done, err
}

// eof says what the source's EOF means for the body: the end of a close-delimited one,
// a cut for the others (errUnexpectedClose), nothing once the body is done.
func (f *bodyFramer) eof() error {
	switch {
	case f.kind == bodyClose, f.kind == bodyNone:
		return nil
	case f.kind == bodyLength && f.left == 0, f.kind == bodyChunked && f.chunks.state == chunkDone:
		return nil
	}
	return errUnexpectedClose
}
