// Package tlshello reads a TLS ClientHello off the start of a connection and takes the
// server name (SNI) from it, without terminating TLS: lbd/dataplane routes passed-through
// TLS in tcp mode by that name, then sends the bytes read on to the chosen server.
//
// Read takes TLS records from an io.Reader, exactly as many bytes as the ClientHello
// spans and not one more, so that the rest can be spliced; ServerName parses the body of
// a ClientHello (RFC 8446, section 4.1.2) for its server_name extension (RFC 6066,
// section 3). Errors for what is not a usable ClientHello are the Err* sentinels; a read
// that times out returns the reader's own error.
//
// The files: hello.go holds all of it. The tests hold ClientHellos captured from curl,
// wget, OpenSSL's s_client, Python's ssl and Go's crypto/tls (testdata/hellos), and the
// fuzz target FuzzRead, which also holds the server name to the one crypto/tls's own
// parser finds (corpus in testdata/fuzz).
//
// This package imports only the standard library, and never lbd/dataplane.
package tlshello
