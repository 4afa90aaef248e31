package dataplane

import (
	"bytes"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
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

// ttOCSP returns a DER OCSP response for serial with status (0 good, 1 revoked) valid
// until next (zero: no next update).
func ttOCSP(t testing.TB, serial *big.Int, status int, this, next time.Time) []byte {
	t.Helper()
	sha1 := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}}
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
				CertID:     ttOCSPCertID{HashAlgorithm: sha1, IssuerNameHash: make([]byte, 20), IssuerKeyHash: make([]byte, 20), Serial: serial},
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
	good := ttOCSP(t, serial, 0, now.Add(-time.Hour), now.Add(time.Hour))

	for _, tc := range []struct {
		name string
		der  []byte
		want string // "" for loaded and stapled
	}{
		{"good", good, ""},
		{"no next update", ttOCSP(t, serial, 0, now.Add(-time.Hour), time.Time{}), ""},
		{"other certificate", ttOCSP(t, big.NewInt(7), 0, now.Add(-time.Hour), now.Add(time.Hour)), "is not for this certificate"},
		{"revoked", ttOCSP(t, serial, 1, now.Add(-time.Hour), now.Add(time.Hour)), "is not good"},
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
