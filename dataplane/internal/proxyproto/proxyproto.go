package proxyproto

import (
	"net/netip"
	"strconv"
)

// Version is a version of the protocol.
type Version uint8

// The versions: V1, a text line; V2, a binary block.
const (
	V1 Version = 1
	V2 Version = 2
)

// String returns "v1" or "v2", as lbd's config names the versions.
func (v Version) String() string { return "v" + strconv.Itoa(int(v)) }

const (
	// MaxV1 is the longest v1 header, CRLF included.
	MaxV1 = 107
	// V2Prefix is the fixed part of a v2 header: signature, version and command,
	// family and transport, length.
	V2Prefix = 16
)

// v2Sig starts every v2 header.
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// v1Sig starts every v1 header.
var v1Sig = []byte("PROXY ")

// v2 commands, families and transports.
const (
	v2Local = 0x0
	v2Proxy = 0x1

	afUnspec = 0x0
	afInet   = 0x1
	afInet6  = 0x2
	afUnix   = 0x3

	transStream = 0x1

	tlvCRC32C = 0x03
)

// Reasons a connection that had to send a PROXY header is refused: Error.Reason, and
// the reason label of lbd_proxy_protocol_errors_total.
const (
	ReasonTimeout   = "timeout"   // the header did not arrive in time
	ReasonClosed    = "closed"    // the connection ended (or failed) before the header did
	ReasonMissing   = "missing"   // the connection does not start with a PROXY signature
	ReasonMalformed = "malformed" // a PROXY header that breaks the specification
)

// Error is why a PROXY header was refused.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Msg says what is wrong, for logs.
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// ErrIncomplete is what Size and Parse say of bytes that hold the start of a header but
// not all of it. Its reason is ReasonClosed: a connection that ends there ended before
// its header did.
var ErrIncomplete = &Error{Reason: ReasonClosed, Msg: "proxy: incomplete header"}

// Header is what a PROXY header says about a connection.
type Header struct {
	// Src is the client's address, Dst the address it connected to (unmapped).
	Src, Dst netip.AddrPort
	// Local means the header gives no addresses to use (v2 LOCAL, v1 UNKNOWN, v2
	// families UNSPEC and AF_UNIX): the connection's own stand.
	Local bool
}
