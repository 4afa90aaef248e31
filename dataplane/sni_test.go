package dataplane

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// ttHello captures the ClientHello a crypto/tls client sends for sni.
func ttHello(t testing.TB, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Handshake()
		a.Close()
	}()
	var buf bytes.Buffer
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	buf.Write(hdr)
	buf.Write(body)
	return buf.Bytes()
}

// ttConnOf serves data from a net.Conn that then reports EOF.
type ttConnOf struct {
	net.Conn
	r io.Reader
}

func (c ttConnOf) Read(p []byte) (int, error) { return c.r.Read(p) }

func ttReadHello(data []byte) ([]byte, string, error) {
	return readClientHello(ttConnOf{r: bytes.NewReader(data)})
}

func TestReadClientHello(t *testing.T) {
	hello := ttHello(t, "a.example.com")
	// The same hello split over two records, as a client may send it.
	split := func(h []byte, at int) []byte {
		body := h[5:]
		var out []byte
		for _, part := range [][]byte{body[:at], body[at:]} {
			out = append(out, 22, 3, 1, byte(len(part)>>8), byte(len(part)))
			out = append(out, part...)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		sni     string
		wantErr error
	}{
		{"hello", hello, "a.example.com", nil},
		{"no sni", ttHello(t, ""), "", nil},
		{"two records", split(hello, 20), "a.example.com", nil},
		{"header split", split(hello, 2), "a.example.com", nil},
		{"plain http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "", errNotTLS},
		{"truncated", hello[:len(hello)-10], "", errHelloShort},
		{"not a hello", append([]byte{22, 3, 1, 0, 4}, 2, 0, 0, 0), "", errNotHello},
		{"empty record", []byte{22, 3, 1, 0, 0}, "", errNotTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, sni, err := ttReadHello(tc.data)
			if !errors.Is(err, tc.wantErr) || sni != tc.sni {
				t.Fatalf("got %q, %v; want %q, %v", sni, err, tc.sni, tc.wantErr)
			}
			if err == nil && !bytes.Equal(raw, tc.data) {
				t.Errorf("the bytes read (%d) are not the bytes sent (%d)", len(raw), len(tc.data))
			}
		})
	}
}

func TestMatchSNI(t *testing.T) {
	a, w := &backend{}, &backend{}
	routes := compileSNIRoutes(Frontend{Routes: []Route{{SNI: "A.example.com", Backend: "a"}, {SNI: "*.example.com", Backend: "w"}}},
		map[string]*backend{"a": a, "w": w})
	for _, tc := range []struct {
		sni  string
		want *backend
	}{
		{"a.example.com", a}, {"a.example.com.", a}, {"b.example.com", w}, {"x.y.example.com", w}, {"example.com", nil}, {"", nil},
	} {
		if got := matchSNI(routes, tc.sni); got != tc.want {
			t.Errorf("%q: got %p, want %p", tc.sni, got, tc.want)
		}
	}
}

func FuzzReadClientHello(f *testing.F) {
	f.Add(ttHello(f, "a.example.com"))
	f.Add(ttHello(f, ""))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	h := ttHello(f, "b.example.com")
	f.Add(h[:len(h)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, _, err := ttReadHello(data)
		if err == nil && !bytes.HasPrefix(data, raw) {
			t.Fatalf("read bytes that are not the input's")
		}
		if len(raw) > len(data) {
			t.Fatalf("read %d bytes of %d", len(raw), len(data))
		}
	})
}
