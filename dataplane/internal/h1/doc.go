// Package h1 is the pure part of lbd's HTTP/1.1 handling: framing found by scanning
// bytes, and the header-field helpers both HTTP engines of lbd/dataplane share. Nothing
// here does I/O beyond reading a *bufio.Reader it is given, and the scanners allocate
// nothing per call: the event-loop engine drives them on every request.
//
// A loop reads whatever a socket holds and must know, without blocking and without
// looking at a byte twice, where a message head ends (HeadScanner) and where its body ends
// (BodyFramer, which follows a body framed by Content-Length, by chunked
// Transfer-Encoding with ChunkScanner, or by the server's close). The fasthttp engine
// reads chunked bodies with ChunkReader, which decodes them with a ChunkScanner, so that
// both engines take a chunked body by one grammar (FuzzChunkScanner checks both against
// a plain reader written from RFC 9112).
//
// The files:
//
//   - head.go: HeadScanner, the incremental end-of-head finder, and PlausibleHead, which
//     tells an incomplete request head that can still become valid from one that cannot.
//   - chunk.go: ChunkScanner, the incremental chunked-body scanner (RFC 9112, section
//     7.1); ChunkReader, which decodes a body on a *bufio.Reader with one; and
//     AppendChunkSize, which writes a chunk-size line's number.
//   - body.go: BodyKind and BodyFramer, one body followed through the bytes that carry
//     it, with a bound on its size.
//   - header.go: header lines and fields: NextLine and SplitHeader walk a raw head,
//     EqualFold compares a name, KindOf names the fields a proxy treats specially
//     (hop-by-hop, Connection, TE, the forwarding ones, Date), and AppendTokens and
//     HasToken read comma-separated lists such as Connection's.
//
// Each file's tests sit beside it, with native fuzz targets (FuzzHeadScanner,
// FuzzChunkScanner, FuzzBodyFramer, FuzzHeaderFields) whose corpora live in
// testdata/fuzz.
//
// Package h1 imports only the standard library; lbd/dataplane imports it, never the
// reverse.
package h1
