package h1

import "bytes"

// NextLine splits the first line, without its CRLF or LF, off b.
func NextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		line, rest = b, nil
	} else {
		line, rest = b[:i], b[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// SplitHeader splits a raw header line into name and value, the value without the
// white space around it; ok is false for anything else (the empty line, a folded
// continuation, a line without a name).
func SplitHeader(line []byte) (k, v []byte, ok bool) {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return nil, nil, false
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	return line[:i], bytes.TrimSpace(line[i+1:]), true
}

// EqualFold reports whether b equals s, ignoring ASCII case (and only ASCII case, as
// header names need).
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if d >= 'A' && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// FieldKind is what a proxy does with a header field, by its name.
type FieldKind uint8

// The kinds of header field KindOf tells apart.
const (
	// Other: an end-to-end field, passed on (unless Connection names it).
	Other FieldKind = iota
	// Hop: connection-specific (Keep-Alive, Upgrade, Proxy-Connection, and Expect,
	// which the proxy answers itself): removed.
	Hop
	// Connection: removed, and so are the fields it names.
	Connection
	// TE: removed; "TE: trailers" is passed on.
	TE
	// XForwardedFor: the client address is appended.
	XForwardedFor
	// Forwarded: X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host: replaced.
	Forwarded
	// Date (in responses): the fasthttp server writes its own.
	Date
)

// KindOf classifies a header field name, ignoring case.
func KindOf(k []byte) FieldKind {
	switch len(k) {
	case 2:
		if EqualFold(k, "te") {
			return TE
		}
	case 4:
		if EqualFold(k, "date") {
			return Date
		}
	case 6:
		if EqualFold(k, "expect") { // fasthttp has answered 100-continue already
			return Hop
		}
	case 7:
		if EqualFold(k, "upgrade") {
			return Hop
		}
	case 9:
		if EqualFold(k, "x-real-ip") {
			return Forwarded
		}
	case 10:
		switch {
		case EqualFold(k, "connection"):
			return Connection
		case EqualFold(k, "keep-alive"):
			return Hop
		}
	case 15:
		if EqualFold(k, "x-forwarded-for") {
			return XForwardedFor
		}
	case 16:
		switch {
		case EqualFold(k, "proxy-connection"):
			return Hop
		case EqualFold(k, "x-forwarded-host"):
			return Forwarded
		}
	case 17:
		if EqualFold(k, "x-forwarded-proto") {
			return Forwarded
		}
	}
	return Other
}

// AppendTokens appends the comma-separated tokens of v, without the white space around
// them and leaving out empty ones, to toks. The tokens are slices of v.
func AppendTokens(toks [][]byte, v []byte) [][]byte {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if t = bytes.TrimSpace(t); len(t) > 0 {
			toks = append(toks, t)
		}
	}
	return toks
}

// HasToken reports whether toks holds k, ignoring case.
func HasToken(toks [][]byte, k []byte) bool {
	for _, t := range toks {
		if bytes.EqualFold(t, k) {
			return true
		}
	}
	return false
}
