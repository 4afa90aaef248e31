package h1

import (
	"errors"
	"io"
)

// ErrBodyLimit is BodyFramer's answer to a body over its limit (for a request body over
// max_body_bytes, the client gets 413).
var ErrBodyLimit = errors.New("body larger than the limit")

// BodyKind is how a message's body is framed.
type BodyKind uint8

// The kinds of body framing.
const (
	BodyNone    BodyKind = iota // no body (GET without length, HEAD answers, 204, 304, 1xx)
	BodyLength                  // Content-Length
	BodyChunked                 // Transfer-Encoding: chunked
	BodyClose                   // a response without length: until the server closes
)

// BodyFramer follows one body through the bytes that carry it.
type BodyFramer struct {
	kind   BodyKind
	left   int64 // BodyLength: bytes left
	chunks ChunkScanner
	// limit bounds the body's bytes as they arrive (framing included); 0: none.
	limit int64
	n     int64 // bytes consumed
}

// NewBodyFramer returns a BodyFramer for a body of kind, length bytes long for
// BodyLength, that fails with ErrBodyLimit past limit bytes on the wire (0: no limit).
func NewBodyFramer(kind BodyKind, length, limit int64) BodyFramer {
	f := BodyFramer{kind: kind, left: length, limit: limit}
	if kind == BodyChunked {
		f.chunks = NewChunkScanner()
	}
	return f
}

// Kind is the body's framing.
func (f *BodyFramer) Kind() BodyKind { return f.kind }

// Scan consumes the bytes of p that belong to the body, as ChunkScanner.Scan does: all
// of p until the body ends; then done is true and p[n:] is the next message.
func (f *BodyFramer) Scan(p []byte) (n int, done bool, err error) {
	switch f.kind {
	case BodyNone:
		return 0, true, nil
	case BodyLength:
		n = int(min(f.left, int64(len(p))))
		f.left -= int64(n)
		done = f.left == 0
	case BodyChunked:
		n, done, err = f.chunks.Scan(p)
	case BodyClose:
		n = len(p)
	}
	f.n += int64(n)
	if err == nil && f.limit > 0 && f.n > f.limit {
		err = ErrBodyLimit
	}
	return n, done, err
}

// TrailerAt tells where a chunked body's trailer section begins: ok once the last
// chunk's size line has passed, and at the offset of the trailer in the input of the
// Scan call it began in, 0 in later calls.
func (f *BodyFramer) TrailerAt() (at int, ok bool) {
	if f.kind != BodyChunked {
		return 0, false
	}
	return f.chunks.TrailerAt()
}

// EOF says what the source's end of stream means for the body: the end of a
// close-delimited one, a cut for the others (io.ErrUnexpectedEOF), nothing once the
// body is done.
func (f *BodyFramer) EOF() error {
	switch {
	case f.kind == BodyClose, f.kind == BodyNone:
		return nil
	case f.kind == BodyLength && f.left == 0, f.kind == BodyChunked && f.chunks.Done():
		return nil
	}
	return io.ErrUnexpectedEOF
}
