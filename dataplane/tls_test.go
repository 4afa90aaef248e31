package dataplane

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lbd/internal/clock"
)

// Helpers of the TLS tests carry the prefix tt.

// ttCA is a test certificate authority.
type ttCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

var ttSerial = big.NewInt(1000)

func ttNewCA(t testing.TB) *ttCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lbd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &ttCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM leaf certificate for names (DNS names or IP addresses) and its
// PEM key.
func (ca *ttCA) issue(t testing.TB, names ...string) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ttSerial = new(big.Int).Add(ttSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Set(ttSerial),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), tmpl.SerialNumber
}

// files writes a certificate for names into dir as base.crt and base.key.
func (ca *ttCA) files(t testing.TB, dir, base string, names ...string) TLSCertificate {
	t.Helper()
	c, k, _ := ca.issue(t, names...)
	tc := TLSCertificate{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	ttWrite(t, tc.CertFile, c)
	ttWrite(t, tc.KeyFile, k)
	return tc
}

func ttWrite(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// ttClient is an HTTPS client trusting ca; http2 lets it negotiate HTTP/2.
func ttClient(t testing.TB, ca *ttCA, http2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: http2}
	if !http2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// ttDialLeaf handshakes with addr asking for sni and returns the DNS names of the
// certificate served.
func ttDialLeaf(t testing.TB, addr, sni string, ca *ttCA) []string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with %s for %q: %v", addr, sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames
}

func ttConfig(backend string, tc *FrontendTLS) Config {
	cfg := htConfig("roundrobin", backend)
	cfg.Frontends[0].TLS = tc
	return cfg
}

func TestTLSTerminationSNIAndHTTP2(t *testing.T) {
	ca := ttNewCA(t)
	dir := t.TempDir()
	be := htServe(t, htEcho)
	cfg := ttConfig(be.addr(), &FrontendTLS{
		Certificates: []TLSCertificate{
			ca.files(t, dir, "default", "default.example.com"),
			ca.files(t, dir, "a", "a.example.com"),
			ca.files(t, dir, "wild", "*.b.example.com"),
		},
		HSTS: &HSTS{MaxAge: time.Hour, IncludeSubdomains: true},
	})
	d := htDataplane(t, cfg)
	addr := d.Addr("fe").String()

	for _, tc := range []struct{ sni, want string }{
		{"a.example.com", "a.example.com"},
		{"A.Example.com", "a.example.com"},
		{"x.b.example.com", "*.b.example.com"},
		{"b.example.com", "default.example.com"},     // a wildcard does not match its parent
		{"x.y.b.example.com", "default.example.com"}, // nor two labels down
		{"", "default.example.com"},
	} {
		if got := ttDialLeaf(t, addr, tc.sni, ca); len(got) != 1 || got[0] != tc.want {
			t.Errorf("SNI %q: served %v, want %s", tc.sni, got, tc.want)
		}
	}

	_, port, _ := net.SplitHostPort(addr)
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			c := ttClient(t, ca, h2)
			// Resolve a.example.com to the frontend.
			c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			for i := range 3 {
				body := strings.NewReader(strings.Repeat("x", i*1000))
				req, _ := http.NewRequest(http.MethodPost, "https://a.example.com:"+port+"/p?q=1", body)
				req.Header.Set("X-Test", "yes")
				req.AddCookie(&http.Cookie{Name: "c1", Value: "1"})
				req.AddCookie(&http.Cookie{Name: "c2", Value: "2"})
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				wantMajor := 1
				if h2 {
					wantMajor = 2
				}
				if resp.StatusCode != 200 || resp.ProtoMajor != wantMajor {
					t.Fatalf("status %d proto %s, want 200 HTTP/%d: %s", resp.StatusCode, resp.Proto, wantMajor, b)
				}
				e := htDecode(t, string(b))
				if e.URI != "/p?q=1" || e.Host != "a.example.com:"+port || e.Body != strings.Repeat("x", i*1000) ||
					e.Header.Get("X-Test") != "yes" || e.Header.Get("X-Forwarded-Proto") != "https" ||
					e.Header.Get("X-Forwarded-For") != "127.0.0.1" || !strings.Contains(e.Header.Get("Cookie"), "c1=1") ||
					!strings.Contains(e.Header.Get("Cookie"), "c2=2") {
					t.Errorf("server saw %+v", e)
				}
				if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600; includeSubDomains" {
					t.Errorf("Strict-Transport-Security = %q", got)
				}
			}
		})
	}
	if v := htValue(t, d.metrics.tls.handshakes.WithLabelValues("fe", "ok", "1.3")); v < 8 {
		t.Errorf("lbd_tls_handshakes_total{result=ok,version=1.3} = %v, want at least 8", v)
	}
}

func TestTLSMinVersionAndFailedHandshake(t *testing.T) {
	ca := ttNewCA(t)
	be := htNamed(t, "ok")
	d := htDataplane(t, ttConfig(be.addr(), &FrontendTLS{
		Certificates: []TLSCertificate{ca.files(t, t.TempDir(), "x", "x.example.com")},
		MinVersion:   "1.3",
	}))
	addr := d.Addr("fe").String()
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "x.example.com", RootCAs: ca.pool, MaxVersion: tls.VersionTLS12})
	if err == nil {
		t.Fatal("a TLS 1.2 client was accepted by a min_version 1.3 frontend")
	}
	htEventually(t, "a failed handshake counted", func() bool {
		return htValue(t, d.metrics.tls.handshakes.WithLabelValues("fe", "failed", "unknown")) >= 1
	})
	// A client speaking plain HTTP to the TLS port gets no answer, and does not hang lbd.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	if bytes.Contains(b, []byte("200 OK")) {
		t.Errorf("plain HTTP on the TLS port answered %q", b)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := ttNewCA(t)
	dir := t.TempDir()
	good := ca.files(t, dir, "good", "good.example.com")
	other := ca.files(t, dir, "other", "other.example.com")
	for _, tc := range []struct {
		name string
		cert TLSCertificate
		want string
	}{
		{"missing cert", TLSCertificate{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: good.KeyFile}, "frontends[0].tls.certificates[1].cert_file: "},
		{"missing key", TLSCertificate{CertFile: good.CertFile, KeyFile: filepath.Join(dir, "nope.key")}, "frontends[0].tls.certificates[1].key_file: "},
		{"unmatched key", TLSCertificate{CertFile: good.CertFile, KeyFile: other.KeyFile}, "frontends[0].tls.certificates[1].key_file: "},
		{"not a certificate", TLSCertificate{CertFile: good.KeyFile, KeyFile: good.KeyFile}, "frontends[0].tls.certificates[1].cert_file: "},
		{"empty", TLSCertificate{}, "frontends[0].tls.certificates[1].cert_file: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{})
			defer d.Close(context.Background())
			err := d.Apply(ttConfig("127.0.0.1:1", &FrontendTLS{Certificates: []TLSCertificate{good, tc.cert}}))
			var fe *FieldError
			if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want a FieldError containing %q", err, tc.want)
			}
			if d.Addr("fe") != nil {
				t.Error("the refused config is serving")
			}
		})
	}
	// A reload with a bad certificate is refused and the old one keeps serving.
	be := htNamed(t, "ok")
	d := htDataplane(t, ttConfig(be.addr(), &FrontendTLS{Certificates: []TLSCertificate{good}}))
	bad := ttConfig(be.addr(), &FrontendTLS{Certificates: []TLSCertificate{{CertFile: good.CertFile, KeyFile: other.KeyFile}}})
	if err := d.Apply(bad); err == nil {
		t.Fatal("a certificate with the wrong key was applied")
	}
	if got := ttDialLeaf(t, d.Addr("fe").String(), "good.example.com", ca); got[0] != "good.example.com" {
		t.Errorf("after a refused reload: served %v", got)
	}
}

func TestTLSValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"tls on tcp", func(c *Config) {
			c.Frontends[0].Mode = ModeTCP
			c.Frontends[0].TLS = &FrontendTLS{Certificates: []TLSCertificate{{CertFile: "a", KeyFile: "b"}}}
		}, "frontends[0].tls: tls termination needs mode http"},
		{"no certificates", func(c *Config) { c.Frontends[0].TLS = &FrontendTLS{} }, "frontends[0].tls.certificates: needs at least one"},
		{"min version", func(c *Config) {
			c.Frontends[0].TLS = &FrontendTLS{Certificates: []TLSCertificate{{CertFile: "a", KeyFile: "b"}}, MinVersion: "1.1"}
		}, `frontends[0].tls.min_version: must be "1.2" or "1.3", not "1.1"`},
		{"preload", func(c *Config) {
			c.Frontends[0].TLS = &FrontendTLS{Certificates: []TLSCertificate{{CertFile: "a", KeyFile: "b"}}, HSTS: &HSTS{MaxAge: time.Hour, Preload: true}}
		}, "frontends[0].tls.hsts.preload: needs include_subdomains"},
		{"h2c with tls", func(c *Config) {
			c.Frontends[0].H2C = true
			c.Frontends[0].TLS = &FrontendTLS{Certificates: []TLSCertificate{{CertFile: "a", KeyFile: "b"}}}
		}, "frontends[0].h2c: needs mode http without tls"},
		{"redirect on tcp", func(c *Config) { c.Frontends[0].Mode = ModeTCP; c.Frontends[0].RedirectToHTTPS = true }, "frontends[0].redirect_to_https: needs mode http"},
		{"sni on http", func(c *Config) { c.Frontends[0].Routes = []Route{{SNI: "a.example.com", Backend: "be"}} }, "frontends[0].routes[0].sni: sni routes need mode tcp, not http"},
		{"host on tcp", func(c *Config) {
			c.Frontends[0].Mode = ModeTCP
			c.Frontends[0].Routes = []Route{{Host: "a.example.com", Backend: "be"}}
		}, "frontends[0].routes[0]: host, path_prefix and header routes need mode http"},
		{"bad sni", func(c *Config) {
			c.Frontends[0].Mode = ModeTCP
			c.Frontends[0].Routes = []Route{{SNI: "a.*.com", Backend: "be"}}
		}, `frontends[0].routes[0].sni: "a.*.com" is not a server name`},
		{"sni to tls backend", func(c *Config) {
			c.Frontends[0].Mode = ModeTCP
			c.Frontends[0].Routes = []Route{{SNI: "a.example.com", Backend: "be"}}
			c.Backends[0].TLS = &BackendTLS{Enabled: true}
		}, `frontends[0].routes[0].backend: backend "be" has tls enabled`},
		{"half mtls", func(c *Config) { c.Backends[0].TLS = &BackendTLS{Enabled: true, CertFile: "x"} }, "backends[0].tls.cert_file: cert_file and key_file go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := htConfig("roundrobin", "127.0.0.1:1")
			tc.edit(&c)
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v\nwant %q", err, tc.want)
			}
		})
	}
	c := htConfig("roundrobin", "127.0.0.1:1")
	c.Frontends[0].Mode = ModeTCP
	c.Frontends[0].Routes = []Route{{SNI: "*.example.com", Backend: "be"}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("a tcp frontend with an sni route: %v", err)
	}
}

// ttPoll steps p's clock to its next poll and returns once the poll is done: the poller
// arms its timer again only then.
func ttPoll(clk *clock.Fake) {
	clk.Advance(certPollInterval)
	clk.BlockUntil(1)
}

func TestTLSReloadOnFileChange(t *testing.T) {
	ca := ttNewCA(t)
	dir := t.TempDir()
	be := htNamed(t, "ok")
	cert := ca.files(t, dir, "site", "old.example.com")
	d := htDataplane(t, ttConfig(be.addr(), &FrontendTLS{Certificates: []TLSCertificate{cert}}))
	addr := d.Addr("fe").String()
	if got := ttDialLeaf(t, addr, "", ca); got[0] != "old.example.com" {
		t.Fatalf("served %v", got)
	}
	clk := clock.NewFake()
	p := &certPoller{clock: clk, d: d, current: func() *certStore { return d.snapshot().frontends[0].tls.store }}
	done := make(chan struct{})
	go p.run(done)
	defer close(done)
	clk.BlockUntil(1) // the poller's timer

	// A client connected before the change keeps its connection.
	c := ttClient(t, ca, true)
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = "old.example.com"
	if code, _ := htDo(t, c, "GET", "https://"+addr+"/", nil); code != 200 {
		t.Fatalf("status %d", code)
	}

	// A key that does not match yet (the cert is written first): the old set serves on.
	c2, k2, _ := ca.issue(t, "new.example.com")
	ttWrite(t, cert.CertFile, c2)
	ttPoll(clk)
	if got := ttDialLeaf(t, addr, "", ca); got[0] != "old.example.com" {
		t.Errorf("with a mismatched key on disk: served %v", got)
	}
	ttWrite(t, cert.KeyFile, k2)
	ttPoll(clk)
	if got := ttDialLeaf(t, addr, "", ca); got[0] != "new.example.com" {
		t.Errorf("after the poll: served %v, want new.example.com", got)
	}
	if code, _ := htDo(t, c, "GET", "https://"+addr+"/", nil); code != 200 {
		t.Errorf("the connection opened before the change: status %d", code)
	}
}

func TestRedirectToHTTPS(t *testing.T) { forEachEngine(t, testRedirectToHTTPS) }

func testRedirectToHTTPS(t *testing.T, engine string) {
	cfg := withEngine(htConfig("roundrobin", "127.0.0.1:1"), engine)
	cfg.Frontends[0].RedirectToHTTPS = true
	d := htDataplane(t, cfg)
	resp, _ := htRaw(t, d, "GET /a/b?c=d HTTP/1.1\r\nHost: www.example.com:8080\r\n\r\n")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://www.example.com/a/b?c=d" {
		t.Errorf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestH2C(t *testing.T) { forEachEngine(t, testH2C) }

func testH2C(t *testing.T, engine string) {
	be := htServe(t, htEcho)
	cfg := withEngine(htConfig("roundrobin", be.addr()), engine)
	cfg.Frontends[0].H2C = true
	d := htDataplane(t, cfg)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(htURL(t, d) + "/h2c")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || htDecode(t, string(b)).URI != "/h2c" || htDecode(t, string(b)).Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("%s: %s", resp.Proto, b)
	}
	// HTTP/1.1 on the same port still works.
	if code, body := htDo(t, htClient(t), "GET", htURL(t, d)+"/h1", nil); code != 200 || htDecode(t, body).URI != "/h1" {
		t.Errorf("HTTP/1.1 on an h2c frontend: %d %s", code, body)
	}
}

func TestBackendTLS(t *testing.T) {
	ca := ttNewCA(t)
	dir := t.TempDir()
	srvCert := ca.files(t, dir, "srv", "backend.internal", "127.0.0.1")
	clientCert := ca.files(t, dir, "client", "lbd.internal")
	ttWrite(t, filepath.Join(dir, "ca.pem"), ca.pem)
	kp, err := tls.LoadX509KeyPair(srvCert.CertFile, srvCert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	sawClientCert := make(chan string, 100)
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := ""
		if len(r.TLS.PeerCertificates) > 0 {
			name = r.TLS.PeerCertificates[0].DNSNames[0]
		}
		select {
		case sawClientCert <- name:
		default:
		}
		fmt.Fprintf(w, "tls %s", r.TLS.ServerName)
	}))
	be.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: ca.pool, ClientAuth: tls.VerifyClientCertIfGiven}
	be.StartTLS()
	defer be.Close()
	beAddr := strings.TrimPrefix(be.URL, "https://")

	// A backend with tls: the loop engine hands its requests over to fasthttp.
	forEachEngine(t, func(t *testing.T, engine string) {
		t.Run("http", func(t *testing.T) {
			for len(sawClientCert) > 0 { // what the other engine's run left
				<-sawClientCert
			}
			cfg := withEngine(htConfig("roundrobin", beAddr), engine)
			cfg.Backends[0].TLS = &BackendTLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem"), ServerName: "backend.internal",
				CertFile: clientCert.CertFile, KeyFile: clientCert.KeyFile}
			d := htDataplane(t, cfg)
			for range 3 {
				if code, body := htDo(t, htClient(t), "GET", htURL(t, d)+"/", nil); code != 200 || body != "tls backend.internal" {
					t.Fatalf("%d %q", code, body)
				}
			}
			if got := <-sawClientCert; got != "lbd.internal" {
				t.Errorf("server saw client certificate %q", got)
			}
		})
		t.Run("untrusted", func(t *testing.T) {
			cfg := withEngine(htConfig("roundrobin", beAddr), engine)
			cfg.Backends[0].TLS = &BackendTLS{Enabled: true} // system roots: the test CA is not one
			d := htDataplane(t, cfg)
			if code, _ := htDo(t, htClient(t), "GET", htURL(t, d)+"/", nil); code != 502 {
				t.Errorf("status %d, want 502 for an untrusted server certificate", code)
			}
		})
	})
	t.Run("tcp", func(t *testing.T) {
		cfg := htConfig("roundrobin", beAddr)
		cfg.Frontends[0].Mode = ModeTCP
		cfg.Backends[0].TLS = &BackendTLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem")} // server name: 127.0.0.1
		d := htDataplane(t, cfg)
		c, err := net.Dial("tcp", d.Addr("fe").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		if !bytes.Contains(b, []byte("200 OK")) || !bytes.HasSuffix(b, []byte("\r\n\r\ntls ")) { // no SNI for an IP address
			t.Errorf("through a tcp frontend to a TLS backend: %q", b)
		}
	})
}

func TestSNIPassthrough(t *testing.T) {
	ca := ttNewCA(t)
	dir := t.TempDir()
	// Three TLS servers, each with its own certificate, answering with their name.
	start := func(name string, names ...string) string {
		c := ca.files(t, dir, name, names...)
		kp, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		s.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
		s.StartTLS()
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "https://")
	}
	cfg := Config{
		Frontends: []Frontend{{Name: "fe", Mode: ModeTCP, Bind: "127.0.0.1:0", Backend: "def", Routes: []Route{
			{SNI: "a.example.com", Backend: "a"},
			{SNI: "*.wild.example.com", Backend: "w"},
		}}},
		Backends: []Backend{
			{Name: "def", Servers: []ServerConfig{{Address: start("def", "def.example.com", "other.example.com")}}},
			{Name: "a", Servers: []ServerConfig{{Address: start("a", "a.example.com")}}},
			{Name: "w", Servers: []ServerConfig{{Address: start("w", "*.wild.example.com")}}},
		},
	}
	d := htDataplane(t, cfg)
	addr := d.Addr("fe").String()
	_, port, _ := net.SplitHostPort(addr)
	for _, tc := range []struct{ host, want string }{
		{"a.example.com", "a"}, {"x.wild.example.com", "w"}, {"other.example.com", "def"},
	} {
		c := ttClient(t, ca, true)
		c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		code, body := htDo(t, c, "GET", "https://"+tc.host+":"+port+"/", nil)
		if code != 200 || body != tc.want {
			t.Errorf("%s: %d %q, want %s", tc.host, code, body, tc.want)
		}
	}
	// A connection that does not start with a ClientHello is closed and counted.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("a plain request got %q", b)
	}
	c.Close()
	m := d.metrics.tls.passthrough
	if htValue(t, m.WithLabelValues("fe", "malformed")) != 1 || htValue(t, m.WithLabelValues("fe", "routed")) != 2 ||
		htValue(t, m.WithLabelValues("fe", "default")) != 1 {
		t.Errorf("passthrough counts: malformed %v routed %v default %v", htValue(t, m.WithLabelValues("fe", "malformed")),
			htValue(t, m.WithLabelValues("fe", "routed")), htValue(t, m.WithLabelValues("fe", "default")))
	}
}
