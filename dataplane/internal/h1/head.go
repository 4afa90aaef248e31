package h1

import (
	"bytes"
	"errors"
)

// ErrHeadTooLarge is HeadScanner's answer to input with no end of head within its limit
// (the client gets 431).
var ErrHeadTooLarge = errors.New("head larger than the limit")

// HeadScanner finds the end of a message head in an input that grows between calls. It
// remembers how far it has looked, so each byte is looked at once however the head
// arrives. Lines end in CRLF or a bare LF; empty lines before the first line are skipped
// (RFC 9112, section 2.2), and count against the limit. The zero HeadScanner has no
// limit.
type HeadScanner struct {
	limit int // the largest head, final empty line included; 0: none
	n     int // bytes looked at
	start int // where the head begins, after leading empty lines
	// line is how many bytes other than CR the current line has so far.
	line  int
	begun bool // a non-empty line has been seen
}

// NewHeadScanner returns a HeadScanner for a head of at most limit bytes (0: no limit).
func NewHeadScanner(limit int) HeadScanner { return HeadScanner{limit: limit} }

// Scan looks at the bytes of buf it has not seen: buf is the whole input so far, the
// bytes seen in earlier calls unchanged. It returns the head as buf[start:end] once its
// final empty line is in buf, end 0 while it is not, and ErrHeadTooLarge once the limit
// has passed without an end.
func (s *HeadScanner) Scan(buf []byte) (start, end int, err error) {
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
		return 0, 0, ErrHeadTooLarge
	}
	return 0, 0, nil
}

// Start is where the head begins in the input, after the empty lines before it, as far
// as the scanner has looked.
func (s *HeadScanner) Start() int { return s.start }

// PlausibleHead reports whether b, the start of an incomplete request head, may still
// become a well-formed one: no CR but before an LF, and a request line, once complete,
// of the form "METHOD SP TARGET SP HTTP/1.x" with an upper-case token method. Once false
// for b, it is false for every longer input that starts with b. The loop engine hands a
// request to the fasthttp engine at once when it is false, so that the client gets
// fasthttp's 400 now, as fasthttp answers as soon as it sees the fault, instead of a 408
// after client_header. (A few heads it calls implausible, one with a lower-case method
// say, fasthttp's parser takes; the fasthttp engine then serves them.)
func PlausibleHead(b []byte) bool {
	for i := bytes.IndexByte(b, '\r'); i >= 0 && i+1 < len(b); {
		if b[i+1] != '\n' {
			return false
		}
		j := bytes.IndexByte(b[i+1:], '\r')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return true
	}
	line := bytes.TrimSuffix(b[:i], []byte("\r"))
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > 32 {
		return false
	}
	for _, ch := range line[:sp] {
		if ch < 'A' || ch > 'Z' {
			return false
		}
	}
	rest := line[sp+1:]
	sp = bytes.LastIndexByte(rest, ' ')
	if sp <= 0 {
		return false
	}
	for _, ch := range rest[:sp] {
		if ch <= ' ' || ch == 0x7f {
			return false
		}
	}
	v := rest[sp+1:]
	return len(v) == 8 && string(v[:7]) == "HTTP/1." && (v[7] == '0' || v[7] == '1')
}
