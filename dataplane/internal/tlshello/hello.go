package tlshello

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxHelloBytes bounds the ClientHello Read reads; a larger hello (post-quantum key
// shares make them a few KiB) is malformed for routing purposes.
const MaxHelloBytes = 64 << 10

// Why bytes are not a ClientHello to route by.
var (
	// ErrNotTLS: the first bytes are not a TLS handshake record of a usable size.
	ErrNotTLS = errors.New("not a TLS handshake record")
	// ErrNotHello: the first handshake message is another one.
	ErrNotHello = errors.New("first handshake message is not a ClientHello")
	// ErrTooLong: a hello over MaxHelloBytes.
	ErrTooLong = fmt.Errorf("ClientHello longer than %d bytes", MaxHelloBytes)
	// ErrShort: the input ended (or failed) inside the hello, or a length in it runs
	// past its end.
	ErrShort = errors.New("truncated ClientHello")
	// ErrBadName: an empty server name, or one with a control, space or non-ASCII byte.
	ErrBadName = errors.New("malformed server name in ClientHello")
)

// Read reads TLS records from c until it holds a whole ClientHello, and returns the
// bytes read and the server name the hello asks for ("" for none). It reads no byte past
// the records that carry the hello. raw holds what was read on failure too.
func Read(c io.Reader) (raw []byte, sni string, err error) {
	raw = make([]byte, 0, 2048)
	var hs []byte // the handshake messages, without record headers
	for {
		// Parse what is there; read another record if the hello is not whole.
		if len(hs) >= 4 {
			if hs[0] != 1 {
				return raw, "", ErrNotHello
			}
			n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if n > MaxHelloBytes {
				return raw, "", ErrTooLong
			}
			if len(hs) >= 4+n {
				sni, err := ServerName(hs[4 : 4+n])
				return raw, sni, err
			}
		}
		hdr, err := readFull(c, &raw, 5)
		if err != nil {
			return raw, "", err
		}
		if hdr[0] != 22 || hdr[1] != 3 { // handshake, TLS 1.x record version
			return raw, "", ErrNotTLS
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > 1<<14+2048 {
			return raw, "", ErrNotTLS
		}
		if len(raw)+n > MaxHelloBytes+5*8 {
			return raw, "", ErrTooLong
		}
		body, err := readFull(c, &raw, n)
		if err != nil {
			return raw, "", err
		}
		hs = append(hs, body...)
	}
}

// readFull reads n more bytes from c onto *buf and returns them. A timeout is returned
// as it is; any other failure before the n bytes are in is ErrShort.
func readFull(c io.Reader, buf *[]byte, n int) ([]byte, error) {
	start := len(*buf)
	for len(*buf) < start+n {
		b := *buf
		if cap(b) < start+n {
			nb := make([]byte, len(b), 2*cap(b)+n)
			copy(nb, b)
			b = nb
		}
		m, err := c.Read(b[len(b) : start+n])
		*buf = b[:len(b)+m]
		if err != nil {
			if len(*buf) < start+n {
				if isTimeout(err) {
					return nil, err
				}
				return nil, ErrShort
			}
		}
	}
	return (*buf)[start : start+n], nil
}

// ServerName returns the server name of a ClientHello body, the handshake message
// without its 4-byte header (RFC 8446, 4.1.2; RFC 6066, 3), or "" when it has none.
func ServerName(b []byte) (string, error) {
	s := helloReader(b)
	if !s.skip(2+32) || !s.skipVec(1) || !s.skipVec(2) || !s.skipVec(1) { // version, random, session id, suites, compression
		return "", ErrShort
	}
	if len(s) == 0 {
		return "", nil // no extensions
	}
	exts, ok := s.vec(2)
	if !ok {
		return "", ErrShort
	}
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec(2)
		if !ok1 || !ok2 {
			return "", ErrShort
		}
		if typ != 0 { // server_name
			continue
		}
		list, ok := data.vec(2)
		if !ok {
			return "", ErrShort
		}
		for len(list) > 0 {
			kind, ok1 := list.u8()
			name, ok2 := list.vec(2)
			if !ok1 || !ok2 {
				return "", ErrShort
			}
			if kind == 0 { // host_name
				if len(name) == 0 || !validHostName(name) {
					return "", ErrBadName
				}
				return string(name), nil
			}
		}
		return "", nil
	}
	return "", nil
}

// validHostName reports whether b has no control, space or non-ASCII byte.
func validHostName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// helloReader reads a ClientHello front to back.
type helloReader []byte

func (s *helloReader) skip(n int) bool {
	if len(*s) < n {
		return false
	}
	*s = (*s)[n:]
	return true
}

func (s *helloReader) u8() (byte, bool) {
	if len(*s) < 1 {
		return 0, false
	}
	v := (*s)[0]
	*s = (*s)[1:]
	return v, true
}

func (s *helloReader) u16() (int, bool) {
	if len(*s) < 2 {
		return 0, false
	}
	v := int((*s)[0])<<8 | int((*s)[1])
	*s = (*s)[2:]
	return v, true
}

// vec reads a vector with a length prefix of size bytes (1 or 2).
func (s *helloReader) vec(size int) (helloReader, bool) {
	var n int
	var ok bool
	if size == 1 {
		var v byte
		v, ok = s.u8()
		n = int(v)
	} else {
		n, ok = s.u16()
	}
	if !ok || len(*s) < n {
		return nil, false
	}
	v := (*s)[:n]
	*s = (*s)[n:]
	return v, true
}

func (s *helloReader) skipVec(size int) bool {
	_, ok := s.vec(size)
	return ok
}

// isTimeout reports whether err is a deadline's (as dataplane's isTimeout does).
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}
