package tlshello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"testing/iotest"
	"time"

	"lbd/internal/testutil"
)

// goHello captures the ClientHello a crypto/tls client sends for sni (one record).
func goHello(t testing.TB, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Handshake()
		a.Close()
	}()
	defer b.Close()
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// splitRecords re-frames the one-record hello h as records whose bodies end at the
// offsets at, as a client may send it.
func splitRecords(h []byte, at ...int) []byte {
	body := h[5:]
	var out []byte
	prev := 0
	for _, end := range append(at, len(body)) {
		part := body[prev:end]
		out = append(out, 22, 3, 1, byte(len(part)>>8), byte(len(part)))
		out = append(out, part...)
		prev = end
	}
	return out
}

// captures returns the ClientHellos in testdata/hellos, by file name, each one record
// (captureNames says the server name each client was given): curl 7.88 (OpenSSL 3.0; default, and HTTP/1.1 over TLS 1.2 only), wget (to an
// address: no name), OpenSSL 3.0's s_client with and without -servername, Python's ssl,
// and Go 1.26's crypto/tls (with a post-quantum key share, 1.5 KiB).
func captures(t testing.TB) map[string][]byte { return testutil.Captures(t, "hellos") }

// captureNames is the server name each capture asks for.
var captureNames = map[string]string{
	"curl-7.88-openssl-3.0.bin":       "www.example.com",
	"curl-7.88-http1.1-tls1.2.bin":    "api.example.org",
	"go-1.26-crypto-tls.bin":          "go.example.com",
	"openssl-3.0-s_client.bin":        "s.example.net",
	"openssl-3.0-s_client-no-sni.bin": "",
	"python-ssl.bin":                  "py.example.com",
	"wget.bin":                        "",
}

func TestReadCaptures(t *testing.T) {
	caps := captures(t)
	if len(caps) != len(captureNames) {
		t.Errorf("%d captures in testdata/hellos, %d named in captureNames", len(caps), len(captureNames))
	}
	for name, data := range caps {
		t.Run(name, func(t *testing.T) {
			want, ok := captureNames[name]
			if !ok {
				t.Fatal("not in captureNames")
			}
			for _, in := range [][]byte{data, splitRecords(data, 1, 40, len(data)-6)} {
				raw, sni, err := Read(iotest.HalfReader(bytes.NewReader(append(bytes.Clone(in), "payload"...))))
				if err != nil || sni != want || !bytes.Equal(raw, in) {
					t.Fatalf("got %q, %v, %d bytes read; want %q and the %d bytes of the hello", sni, err, len(raw), want, len(in))
				}
			}
		})
	}
}

// helloCases are Read's table, and the fuzz target's seeds.
func helloCases(t testing.TB) []struct {
	name string
	data []byte
	sni  string
	err  error
} {
	hello := goHello(t, "a.example.com")
	body := hello[9:] // the hello's body, without record and handshake headers
	// withSNI rebuilds hello's body with one server_name extension holding list.
	withSNI := func(list []byte) []byte {
		ext := append([]byte{0, 0, byte((len(list) + 2) >> 8), byte(len(list) + 2), byte(len(list) >> 8), byte(len(list))}, list...)
		// version, random, session id, suites, compression: then an extension block of ext
		s := body[2+32:]
		s = s[1+int(s[0]):]
		s = s[2+(int(s[0])<<8|int(s[1])):]
		s = s[1+int(s[0]):]
		fixed := body[:len(body)-len(s)]
		msg := append(bytes.Clone(fixed), byte(len(ext)>>8), byte(len(ext)))
		msg = append(msg, ext...)
		hs := append([]byte{1, 0, byte(len(msg) >> 8), byte(len(msg))}, msg...)
		return append([]byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
	}
	name := func(kind byte, n string) []byte {
		return append([]byte{kind, byte(len(n) >> 8), byte(len(n))}, n...)
	}
	return []struct {
		name string
		data []byte
		sni  string
		err  error
	}{
		{"hello", hello, "a.example.com", nil},
		{"no sni", goHello(t, ""), "", nil},
		{"two records", splitRecords(hello, 20), "a.example.com", nil},
		{"handshake header split", splitRecords(hello, 2), "a.example.com", nil},
		{"a record a byte", splitRecords(hello, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), "a.example.com", nil},
		{"rebuilt", withSNI(name(0, "b.example.com")), "b.example.com", nil},
		{"other name type first", withSNI(append(name(7, "x"), name(0, "c.example.com")...)), "c.example.com", nil},
		{"only other name types", withSNI(name(7, "x")), "", nil},
		{"empty name", withSNI(name(0, "")), "", ErrBadName},
		{"space in name", withSNI(name(0, "a b")), "", ErrBadName},
		{"non-ascii name", withSNI(name(0, "\xc3\xa4.example.com")), "", ErrBadName},
		{"name overruns list", withSNI([]byte{0, 0, 9, 'a'}), "", ErrShort},
		{"plain http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "", ErrNotTLS},
		{"ssl 2 record", []byte{22, 2, 0, 0, 4, 1, 0, 0, 0}, "", ErrNotTLS},
		{"truncated", hello[:len(hello)-10], "", ErrShort},
		{"not a hello", []byte{22, 3, 1, 0, 4, 2, 0, 0, 0}, "", ErrNotHello},
		{"empty record", []byte{22, 3, 1, 0, 0}, "", ErrNotTLS},
		{"record too long", []byte{22, 3, 1, 0x48, 1}, "", ErrNotTLS},
		{"hello too long", []byte{22, 3, 1, 0, 4, 1, 1, 0, 1}, "", ErrTooLong},
		{"empty hello", []byte{22, 3, 1, 0, 4, 1, 0, 0, 0}, "", ErrShort},
	}
}

func TestRead(t *testing.T) {
	for _, tc := range helloCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			// Read must stop at the hello's end: what follows is the server's.
			in := append(bytes.Clone(tc.data), "payload"...)
			raw, sni, err := Read(bytes.NewReader(in))
			if !errors.Is(err, tc.err) || sni != tc.sni {
				t.Fatalf("got %q, %v; want %q, %v", sni, err, tc.sni, tc.err)
			}
			if err == nil && !bytes.Equal(raw, tc.data) {
				t.Errorf("the bytes read (%d) are not the hello's (%d)", len(raw), len(tc.data))
			}
		})
	}
}

// timeoutReader gives its bytes, then a timeout.
type timeoutReader struct{ r io.Reader }

func (r timeoutReader) Read(p []byte) (int, error) {
	if n, _ := r.r.Read(p); n > 0 {
		return n, nil
	}
	return 0, os.ErrDeadlineExceeded
}

func TestReadTimeout(t *testing.T) {
	hello := goHello(t, "a.example.com")
	_, _, err := Read(timeoutReader{bytes.NewReader(hello[:100])})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("got %v, want the reader's timeout", err)
	}
	_, _, err = Read(iotest.DataErrReader(bytes.NewReader(hello[:100])))
	if !errors.Is(err, ErrShort) {
		t.Errorf("got %v, want ErrShort", err)
	}
}

// stdlibServerName is the server name crypto/tls's server finds in data, and whether its
// ClientHello parser accepted the hello.
func stdlibServerName(data []byte) (name string, ok bool) {
	stop := errors.New("stop")
	c := tls.Server(rwConn{r: bytes.NewReader(data)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name, ok = h.ServerName, true
			return nil, stop
		},
	})
	c.Handshake()
	return name, ok
}

// rwConn is a net.Conn that reads from r and discards what is written.
type rwConn struct {
	net.Conn
	r io.Reader
}

func (c rwConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c rwConn) Write(p []byte) (int, error) { return len(p), nil }

// FuzzRead checks that Read reads no byte that is not the input's, stops at the
// hello's end, and finds the server name crypto/tls's server finds where both take the
// hello.
func FuzzRead(f *testing.F) {
	for _, tc := range helloCases(f) {
		f.Add(tc.data)
	}
	for _, b := range captures(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, sni, err := Read(bytes.NewReader(data))
		if len(raw) > len(data) || !bytes.HasPrefix(data, raw) {
			t.Fatalf("read %d bytes that are not the input's %d", len(raw), len(data))
		}
		if err != nil {
			return
		}
		if raw2, sni2, err := Read(bytes.NewReader(raw)); err != nil || sni2 != sni || len(raw2) != len(raw) {
			t.Fatalf("the hello alone: %q, %v, %d bytes; with what follows: %q, %d bytes", sni2, err, len(raw2), sni, len(raw))
		}
		if name, ok := stdlibServerName(data); ok && name != sni {
			t.Fatalf("server name %q; crypto/tls finds %q", sni, name)
		}
	})
}

// TestFuzzCorpora: every fuzz target of this package keeps a corpus in testdata/fuzz.
func TestFuzzCorpora(t *testing.T) {
	testutil.RequireCorpus(t, "FuzzRead")
}
