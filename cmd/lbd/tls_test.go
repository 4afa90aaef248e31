package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsCA issues certificates for the TLS integration tests.
type tlsCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	n    int64
}

func newTLSCA(t *testing.T) *tlsCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "it CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlsCA{cert: cert, key: key, pool: pool, n: 1}
}

// write issues a certificate for name and writes it and its key to path.crt, path.key.
func (ca *tlsCA) write(t *testing.T, path, name string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca.n++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.n), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(path+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(path+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// servedName handshakes with addr and returns the DNS name of the certificate served.
func servedName(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames[0]
}

func TestTLSFrontend(t *testing.T) {
	ca := newTLSCA(t)
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	ca.write(t, site, "one.example.com")
	be := namedBackend(t, "s1", 0, nil)
	port, plain := freePort(t, "tcp"), freePort(t, "tcp")
	cfg := func(key string) string {
		return fmt.Sprintf(`frontends:
  - name: https
    bind: 127.0.0.1:%d
    backend: app
    tls:
      certificates: [{cert_file: %s.crt, key_file: %s}]
      hsts: {max_age: 1h}
  - {name: http, bind: "127.0.0.1:%d", backend: app, redirect_to_https: true}
backends:
  - {name: app, servers: [{address: %s}]}
`, port, site, key, plain, be.Listener.Addr())
	}
	p := startLBD(t, cfg(site+".key"))
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "one.example.com"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "s1" || resp.ProtoMajor != 2 || resp.Header.Get("Strict-Transport-Security") != "max-age=3600" {
		t.Fatalf("%s %d %q HSTS %q", resp.Proto, resp.StatusCode, body, resp.Header.Get("Strict-Transport-Security"))
	}
	if got := p.metric(t, `lbd_tls_handshakes_total{frontend="https",result="ok",version="1.3"}`); got == "" || got == "0" {
		t.Errorf("handshakes counted: %q", got)
	}

	// Redirect from the plain frontend.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/x?y=1", plain), nil)
	req.Host = "one.example.com"
	if resp, err := noFollow.Do(req); err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "https://one.example.com/x?y=1" {
		t.Fatalf("redirect: %v %+v", err, resp)
	}

	// A certificate replaced on disk is served after SIGHUP; the open HTTP/2 connection
	// keeps working.
	ca.write(t, site, "two.example.com")
	p.reload(t, "success")
	if got := servedName(t, addr); got != "two.example.com" {
		t.Errorf("after SIGHUP: served %s", got)
	}
	if resp, err := c.Get("https://" + addr + "/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("the connection opened before the reload: %v", err)
	} else {
		resp.Body.Close()
	}

	// A key that does not match refuses the reload, naming the field.
	other := filepath.Join(dir, "other")
	ca.write(t, other, "three.example.com")
	p.write(t, cfg(other+".key"))
	p.reload(t, "failure")
	if !strings.Contains(p.logs.String(), "frontends[0].tls.certificates[0].key_file") {
		t.Errorf("the refused reload does not name the field:\n%s", p.logs.String())
	}
	if got := servedName(t, addr); got != "two.example.com" {
		t.Errorf("after a refused reload: served %s", got)
	}
}
