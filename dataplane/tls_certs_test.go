package dataplane

import (
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// OCSP responses built with encoding/asn1, as a responder would send them (the
// signature is not checked by lbd, so it is a placeholder).

type ttOCSPResponse struct {
	Status   asn1.Enumerated
	Response ttOCSPBytes `asn1:"explicit,tag:0,optional"`
}

type ttOCSPBytes struct {
	Type     asn1.ObjectIdentifier
	Response []byte
}

type ttOCSPBasic struct {
	TBS       ttOCSPData
	Algorithm pkix.AlgorithmIdentifier
	Signature asn1.BitString
}

type ttOCSPData struct {
	Responder  asn1.RawValue
	ProducedAt time.Time `asn1:"generalized"`
	Responses  []ttOCSPSingle
}

type ttOCSPSingle struct {
	CertID     ttOCSPCertID
	Status     asn1.RawValue
	ThisUpdate time.Time `asn1:"generalized"`
	NextUpdate time.Time `asn1:"generalized,explicit,tag:0,optional"`
}

type ttOCSPCertID struct {
	HashAlgorithm  pkix.AlgorithmIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	Serial         *big.Int
}

// ttOCSP returns a DER OCSP response for the certificate issuer issued with serial, with
// status (0 good, 1 revoked), valid until next (zero: no next update).
func ttOCSP(t testing.TB, issuer *x509.Certificate, serial *big.Int, status int, this, next time.Time) []byte {
	t.Helper()
	sha1 := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	nameHash, keyHash := sha1sum(issuer.RawSubject), sha1sum(spki.PublicKey.RightAlign())
	st := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: status}
	if status == 1 {
		st.IsCompound = true
		st.Bytes, _ = asn1.MarshalWithParams(this, "generalized")
	}
	name, _ := asn1.Marshal(pkix.Name{CommonName: "responder"}.ToRDNSequence())
	basic, err := asn1.Marshal(ttOCSPBasic{
		TBS: ttOCSPData{
			Responder:  asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: name},
			ProducedAt: this.UTC().Truncate(time.Second),
			Responses: []ttOCSPSingle{{
				CertID:     ttOCSPCertID{HashAlgorithm: sha1, IssuerNameHash: nameHash, IssuerKeyHash: keyHash, Serial: serial},
				Status:     st,
				ThisUpdate: this.UTC().Truncate(time.Second),
				NextUpdate: next.UTC().Truncate(time.Second),
			}},
		},
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}},
		Signature: asn1.BitString{Bytes: []byte{1, 2, 3}, BitLength: 24},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(ttOCSPResponse{Response: ttOCSPBytes{Type: oidOCSPBasic, Response: basic}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestOCSPStaple(t *testing.T) {
	ca := ttNewCA(t)
	dir := t.TempDir()
	c, k, serial := ca.issue(t, "ocsp.example.com")
	cert := TLSCertificate{CertFile: filepath.Join(dir, "c.crt"), KeyFile: filepath.Join(dir, "c.key"), OCSPFile: filepath.Join(dir, "c.ocsp")}
	ttWrite(t, cert.CertFile, c)
	ttWrite(t, cert.KeyFile, k)
	now := time.Now()
	good := ttOCSP(t, ca.cert, serial, 0, now.Add(-time.Hour), now.Add(time.Hour))
	// A response from another issuer (here named as the leaf is) for the same serial.
	blk, _ := pem.Decode(c)
	other, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		der  []byte
		want string // "" for loaded and stapled
	}{
		{"good", good, ""},
		{"no next update", ttOCSP(t, ca.cert, serial, 0, now.Add(-time.Hour), time.Time{}), ""},
		{"other certificate", ttOCSP(t, ca.cert, big.NewInt(7), 0, now.Add(-time.Hour), now.Add(time.Hour)), "is not for this certificate"},
		{"revoked", ttOCSP(t, ca.cert, serial, 1, now.Add(-time.Hour), now.Add(time.Hour)), "is not good"},
		{"other issuer", ttOCSP(t, other, serial, 0, now.Add(-time.Hour), now.Add(time.Hour)), "is not for this certificate"},
		{"garbage", []byte("not DER"), "not a DER OCSP response"},
		{"unsuccessful", []byte{0x30, 0x03, 0x0a, 0x01, 0x06}, "not successful"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ttWrite(t, cert.OCSPFile, tc.der)
			cs, err := loadCertSet("frontends[0].tls", &FrontendTLS{Certificates: []TLSCertificate{cert}}, now)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), "frontends[0].tls.certificates[0].ocsp_file: ") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an ocsp_file error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cs.pick("ocsp.example.com", now).OCSPStaple; !bytes.Equal(got, tc.der) {
				t.Errorf("staple %x, want the file's bytes", got)
			}
		})
	}

	// Past its next update, the response is no longer stapled; the certificate serves on.
	ttWrite(t, cert.OCSPFile, good)
	cs, err := loadCertSet("frontends[0].tls", &FrontendTLS{Certificates: []TLSCertificate{cert}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if cs.pick("", now.Add(2*time.Hour)).OCSPStaple != nil {
		t.Error("an expired response is still stapled")
	}

	// Stapled in a real handshake.
	be := htNamed(t, "ok")
	d := htDataplane(t, ttConfig(be.addr(), &FrontendTLS{Certificates: []TLSCertificate{cert}}))
	conn, err := tls.Dial("tcp", d.Addr("fe").String(), &tls.Config{ServerName: "ocsp.example.com", RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !bytes.Equal(conn.ConnectionState().OCSPResponse, good) {
		t.Error("the handshake carried no (or another) OCSP response")
	}
}

func sha1sum(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}

// TestOCSPIssuerKey: with the issuer in the certificate file's chain, a response must
// name the issuer's key too: one from another CA with the same name and serial is
// refused.
func TestOCSPIssuerKey(t *testing.T) {
	ca, twin := ttNewCA(t), ttNewCA(t) // both "lbd test CA", with different keys
	dir := t.TempDir()
	c, k, serial := ca.issue(t, "ocsp.example.com")
	cert := TLSCertificate{CertFile: filepath.Join(dir, "c.crt"), KeyFile: filepath.Join(dir, "c.key"), OCSPFile: filepath.Join(dir, "c.ocsp")}
	ttWrite(t, cert.CertFile, append(c, ca.pem...))
	ttWrite(t, cert.KeyFile, k)
	now := time.Now()
	ttWrite(t, cert.OCSPFile, ttOCSP(t, twin.cert, serial, 0, now.Add(-time.Hour), now.Add(time.Hour)))
	if _, err := loadCertSet("frontends[0].tls", &FrontendTLS{Certificates: []TLSCertificate{cert}}, now); err == nil || !strings.Contains(err.Error(), "is not for this certificate") {
		t.Errorf("a response naming another key of the same issuer name: %v, want refused", err)
	}
	ttWrite(t, cert.OCSPFile, ttOCSP(t, ca.cert, serial, 0, now.Add(-time.Hour), now.Add(time.Hour)))
	if _, err := loadCertSet("frontends[0].tls", &FrontendTLS{Certificates: []TLSCertificate{cert}}, now); err != nil {
		t.Errorf("the issuer's own response: %v", err)
	}
}

// TestKeyFileMode: a private key file others may read is refused, naming the field and
// the file, for a frontend's certificate and a backend's client certificate; a key its
// group may read (the ssl-cert convention) is accepted.
func TestKeyFileMode(t *testing.T) {
	ca := ttNewCA(t)
	dir := t.TempDir()
	fe := ca.files(t, dir, "fe", "a.example.com")
	load := func() error {
		_, err := loadCertSet("frontends[0].tls", &FrontendTLS{Certificates: []TLSCertificate{fe}}, time.Now())
		return err
	}
	be := func() error {
		b := &backend{cfg: Backend{TLS: &BackendTLS{Enabled: true, CertFile: fe.CertFile, KeyFile: fe.KeyFile}}}
		return buildBackendTLS(b, 0)
	}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o640, true}, {0o644, false}, {0o604, false}, {0o602, false}} {
		if err := os.Chmod(fe.KeyFile, tc.mode); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			field string
			err   error
		}{{"frontends[0].tls.certificates[0].key_file: ", load()}, {"backends[0].tls.key_file: ", be()}} {
			switch {
			case tc.ok && c.err != nil:
				t.Errorf("mode %04o: %v", tc.mode, c.err)
			case !tc.ok && (c.err == nil || !strings.Contains(c.err.Error(), c.field+fe.KeyFile+" is a private key open to others")):
				t.Errorf("mode %04o: %v, want refused naming %s and the file", tc.mode, c.err, c.field)
			}
		}
	}
}
