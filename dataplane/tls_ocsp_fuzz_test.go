package dataplane

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// FuzzOCSP feeds the OCSP staple loader (parseOCSP, then check against a test leaf and
// its issuer) arbitrary DER, seeded with responses for the leaf (good, revoked, without
// next update), for another serial and from another issuer. A response that check
// accepts must hold a single response for the leaf's serial, from its issuer, that says
// good, and its nextUpdate must be that response's.
func FuzzOCSP(f *testing.F) {
	ca, other := ttNewCA(f), ttNewCA(f)
	certPEM, keyPEM, serial := ca.issue(f, "ocsp.example.com")
	pair, err := tls.X509KeyPair(append(certPEM, ca.pem...), keyPEM)
	if err != nil {
		f.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	pair.Leaf = leaf
	issuer := chainIssuer(&pair)
	if issuer == nil {
		f.Fatal("the test chain holds no issuer")
	}
	now := time.Now()
	for _, der := range [][]byte{
		ttOCSP(f, ca.cert, serial, 0, now.Add(-time.Hour), now.Add(time.Hour)),
		ttOCSP(f, ca.cert, serial, 0, now.Add(-time.Hour), time.Time{}),
		ttOCSP(f, ca.cert, serial, 1, now.Add(-time.Hour), now.Add(time.Hour)),
		ttOCSP(f, ca.cert, serial, 0, now.Add(time.Hour), now.Add(-time.Hour)),
		ttOCSP(f, ca.cert, big.NewInt(7), 0, now.Add(-time.Hour), now.Add(time.Hour)),
		ttOCSP(f, other.cert, serial, 0, now.Add(-time.Hour), now.Add(time.Hour)),
		[]byte("not DER"),
	} {
		f.Add(der)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		st, err := parseOCSP(der)
		if err != nil {
			return
		}
		if len(st.responses) == 0 {
			t.Fatal("parseOCSP accepted a response without a certificate status")
		}
		for _, iss := range []*x509.Certificate{issuer, nil} {
			if st.check(leaf, iss) != nil {
				continue
			}
			ok := false
			for _, r := range st.responses {
				if r.CertID.Serial != nil && r.CertID.Serial.Cmp(leaf.SerialNumber) == 0 &&
					sameIssuer(r.CertID, leaf, iss) && r.Status.Class == asn1.ClassContextSpecific && r.Status.Tag == 0 {
					ok = r.NextUpdate.Equal(st.nextUpdate)
					break
				}
			}
			if !ok {
				t.Fatalf("check (issuer known: %v) accepted a response with no good status for serial %v from the issuer", iss != nil, leaf.SerialNumber)
			}
		}
	})
}
