// Package proxyproto parses and builds PROXY protocol headers, versions 1 and 2, as
// HAProxy specifies them (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt):
// the line or block a proxy sends at the start of a connection to name the client it
// stands for.
//
// Size tells, from the first bytes of a connection, how long the header they start
// with is, so that a reader can take exactly the header off a socket and not a byte of
// what follows; Parse checks a whole header and returns what it says (Header); Append
// writes one. Every error is an *Error with the reason a connection is refused for
// (Reason*), or ErrIncomplete for bytes that are only the start of a header.
//
// The files:
//
//   - proxyproto.go: Header, Error and the reasons, the signatures and sizes.
//   - parse.go: Size and Parse, the v1 line and the v2 block with its TLVs (the CRC32C
//     one checked).
//   - append.go: Append, v1 or v2.
//
// The tests hold a table of good and malformed headers, headers HAProxy 2.6 sent
// (testdata/haproxy), and the fuzz target FuzzParse (corpus in testdata/fuzz).
//
// Reading a header off a socket, deciding which peers must send one (accept_proxy),
// and the metrics stay in lbd/dataplane (proxyproto.go there). This package imports only
// the standard library, and never lbd/dataplane.
package proxyproto
