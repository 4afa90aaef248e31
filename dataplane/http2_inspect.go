package dataplane

// The HTTP/2 frame inspector: every byte an HTTP/2 client sends reaches net/http's
// HTTP/2 server (http2.go) through it, so that two rules of RFC 9113 that net/http does
// not keep hold for lbd's clients:
//
//   - SETTINGS (6.5.3): the values of a frame are processed in the order they appear,
//     and one setting may appear more than once; net/http closes the connection on a
//     repeated setting. The inspector keeps the last value of each setting, which is
//     where processing them in order ends; a value invalid on its own (6.5.2) is kept
//     instead, so that net/http answers it as it would have.
//   - Connection-specific fields, and TE with a value other than "trailers" (8.2.2),
//     make a request malformed: a stream error of type PROTOCOL_ERROR, where net/http
//     answers 400. The inspector decodes every header block with an HPACK decoder of
//     its own, in step with net/http's (same table size, same blocks), and when a block
//     holds such a field it ends the block with a CONTINUATION frame of its own that
//     carries one more field, whose upper-case name net/http resets the stream for
//     (PROTOCOL_ERROR). That field is a literal that is never indexed, so neither
//     decoder's table changes and the connection goes on.
//
// Whatever it cannot follow (a frame larger than h2MaxFrameSize, a HEADERS frame whose
// padding does not fit, a CONTINUATION out of place, an HPACK error) it passes on
// untouched from there on: net/http finds the same fault and closes the connection.
// Frames it does not look into (DATA above all) pass through without a copy of their
// payload.

import (
	"bufio"
	"net"

	"golang.org/x/net/http2/hpack"
)

// Frame types and flags of RFC 9113, section 6.
const (
	h2FrameHeaders      = 0x1
	h2FrameSettings     = 0x4
	h2FrameContinuation = 0x9

	h2FlagAck        = 0x1 // SETTINGS
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20

	h2FrameHeaderLen = 9
	// h2MaxSettings is the most settings in a frame that the inspector rewrites; net/http
	// refuses a frame with more anyway.
	h2MaxSettings = 100
)

// h2Malformed is the field the inspector adds to a malformed header block: its name is
// not valid in HTTP/2 (upper case), so net/http resets the stream with PROTOCOL_ERROR.
// It is encoded as a literal field never indexed, with a new name (RFC 7541, 6.2.3).
var h2Malformed = []byte{0x10, 9, 'M', 'A', 'L', 'F', 'O', 'R', 'M', 'E', 'D', 0}

// h2Inspector is a client connection as net/http's HTTP/2 server reads it. It is read
// by one goroutine at a time (the server's frame reader); writes go straight to Conn.
type h2Inspector struct {
	net.Conn
	// listSize bounds the HPACK strings, as net/http bounds them.
	listSize uint32

	br   *bufio.Reader // allocated on the first read
	head [h2FrameHeaderLen]byte
	// out is what to hand out before reading on: a frame header, or a whole frame that
	// was inspected (in frame).
	out   []byte
	frame []byte
	// pass is how many bytes of the current frame pass on as they come; off is set
	// once the inspector no longer follows the connection.
	pass int
	off  bool

	dec *hpack.Decoder
	// block is the stream whose header block is being decoded (0: none); bad and te
	// are what its fields showed so far.
	block uint32
	bad   bool
	te    int
}

func newH2Inspector(c net.Conn, listSize uint32) *h2Inspector {
	return &h2Inspector{Conn: c, listSize: listSize, pass: len(h2cPreface)}
}

func (c *h2Inspector) Read(p []byte) (int, error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.Conn, h2FrameHeaderLen+h2MaxFrameSize)
		c.dec = hpack.NewDecoder(h2HeaderTableSize, c.field)
		c.dec.SetMaxStringLength(int(c.listSize))
	}
	for {
		switch {
		case len(c.out) > 0:
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		case c.off:
			return c.br.Read(p)
		case c.pass > 0:
			if len(p) > c.pass {
				p = p[:c.pass]
			}
			n, err := c.br.Read(p)
			c.pass -= n
			return n, err
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
}

// next reads the header of the next frame and, for the frames it looks into, the whole
// frame, and sets out and pass.
func (c *h2Inspector) next() error {
	h, err := c.br.Peek(h2FrameHeaderLen)
	if err != nil {
		if len(h) > 0 {
			c.off = true // a partial frame before the end: the server's to see
			return nil
		}
		return err
	}
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ, flags := h[3], h[4]
	stream := (uint32(h[5])<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])) & (1<<31 - 1)
	switch {
	case length > h2MaxFrameSize, c.block != 0 && (typ != h2FrameContinuation || stream != c.block):
		c.off = true
		return nil
	case typ == h2FrameHeaders, typ == h2FrameContinuation, typ == h2FrameSettings && flags&h2FlagAck == 0:
	default:
		c.out = append(c.head[:0], h...)
		c.br.Discard(h2FrameHeaderLen)
		c.pass = length
		return nil
	}
	b, err := c.br.Peek(h2FrameHeaderLen + length)
	if err != nil { // the connection ends (or times out) inside the frame
		c.off = true
		return nil
	}
	c.frame = append(c.frame[:0], b...)
	c.br.Discard(len(b))
	if typ == h2FrameSettings {
		c.frame = collapseSettings(c.frame, stream)
	} else if !c.headerBlock(typ, flags, stream) {
		c.off = true
	}
	c.out = c.frame
	return nil
}

// headerBlock decodes the fragment of a HEADERS or CONTINUATION frame in c.frame, and
// ends a malformed block with h2Malformed. It returns false when the frame cannot be
// followed.
func (c *h2Inspector) headerBlock(typ, flags byte, stream uint32) bool {
	frag := c.frame[h2FrameHeaderLen:]
	if typ == h2FrameHeaders {
		if c.block != 0 || stream == 0 {
			return false
		}
		pad := 0
		if flags&h2FlagPadded != 0 {
			if len(frag) < 1 {
				return false
			}
			pad, frag = int(frag[0]), frag[1:]
		}
		if flags&h2FlagPriority != 0 {
			if len(frag) < 5 {
				return false
			}
			frag = frag[5:]
		}
		if pad > len(frag) {
			return false
		}
		frag = frag[:len(frag)-pad]
		c.block, c.bad, c.te = stream, false, 0
	} else if c.block == 0 {
		return false
	}
	if _, err := c.dec.Write(frag); err != nil {
		return false
	}
	if flags&h2FlagEndHeaders == 0 {
		return true
	}
	c.block = 0
	if err := c.dec.Close(); err != nil {
		return false
	}
	if c.bad {
		c.frame[4] &^= h2FlagEndHeaders
		n := len(h2Malformed)
		c.frame = append(c.frame, byte(n>>16), byte(n>>8), byte(n), h2FrameContinuation, h2FlagEndHeaders,
			byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream))
		c.frame = append(c.frame, h2Malformed...)
	}
	return true
}

// field looks at one decoded field of the block: connection-specific fields, and TE
// other than one "trailers" (net/http lets an empty TE pass), make it malformed.
func (c *h2Inspector) field(f hpack.HeaderField) {
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		c.bad = true
	case "te":
		c.te++
		if c.te > 1 || f.Value != "trailers" && f.Value != "" {
			c.bad = true
		}
	}
}

// collapseSettings rewrites the SETTINGS frame f so that each setting appears once: with
// its last value, or with its first value that is invalid on its own. A frame that
// net/http refuses for other reasons (stream, length, too many settings) stays as it is.
func collapseSettings(f []byte, stream uint32) []byte {
	p := f[h2FrameHeaderLen:]
	n := len(p) / 6
	if stream != 0 || len(p)%6 != 0 || n < 2 || n > h2MaxSettings {
		return f
	}
	id := func(i int) uint16 { return uint16(p[6*i])<<8 | uint16(p[6*i+1]) }
	val := func(i int) uint32 {
		return uint32(p[6*i+2])<<24 | uint32(p[6*i+3])<<16 | uint32(p[6*i+4])<<8 | uint32(p[6*i+5])
	}
	// keep reports whether setting i is the one kept of those with its identifier.
	keep := func(i int) bool {
		first, last := -1, -1
		for j := range n {
			if id(j) != id(i) {
				continue
			}
			if first < 0 && !validSetting(id(j), val(j)) {
				first = j
			}
			last = j
		}
		if first >= 0 {
			return i == first
		}
		return i == last
	}
	var kept [h2MaxSettings]bool
	for i := range n {
		kept[i] = keep(i)
	}
	w := 0
	for i := range n {
		if kept[i] {
			copy(p[6*w:6*w+6], p[6*i:6*i+6])
			w++
		}
	}
	if w == n {
		return f
	}
	l := 6 * w
	f[0], f[1], f[2] = byte(l>>16), byte(l>>8), byte(l)
	return f[:h2FrameHeaderLen+l]
}

// validSetting reports whether a setting's value is valid on its own (RFC 9113, 6.5.2;
// RFC 8441 for ENABLE_CONNECT_PROTOCOL), as net/http checks it.
func validSetting(id uint16, v uint32) bool {
	switch id {
	case 0x2, 0x8: // ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL
		return v <= 1
	case 0x4: // INITIAL_WINDOW_SIZE
		return v <= 1<<31-1
	case 0x5: // MAX_FRAME_SIZE
		return v >= 1<<14 && v <= 1<<24-1
	}
	return true
}
