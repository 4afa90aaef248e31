package dataplane

// Certificates of a TLS frontend: loading them from PEM files, choosing one by the
// server name a client asks for (SNI), stapling an OCSP response from a file, and
// reloading them when the files change.
//
// OCSP. golang.org/x/crypto/ocsp is not a dependency of lbd, so a stapled response is
// checked with the standard library only (encoding/asn1, see parseOCSP): it must be a
// successful basic OCSP response that names the certificate, by its serial number and
// its issuer (the hash of the issuer's name, and of its key when the certificate file
// holds the issuer in its chain), with status good, and whose next update, when it has
// one, is still to come. A serial number alone is not enough: another CA's response for
// the same serial, stapled by mistake, would pass. Its signature is not
// verified here: the client verifies it, and a response from a file is what the
// operator fetched (like HAProxy's .ocsp files). A response past its next update is
// dropped from the handshake (the certificate is still served) until a fresh one is
// put in the file.

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"lbd/internal/clock"
)

// certPollInterval is how often the certificate files of a TLS frontend are checked for
// changes (modification time and size).
const certPollInterval = 5 * time.Second

// certSet is the certificates of a frontend as loaded at one moment.
type certSet struct {
	certs []*tls.Certificate // in config order; certs[0] is the default
	// exact maps a lower-case DNS name or IP address to its certificate; wild maps the
	// suffix of a wildcard name ("example.com" for "*.example.com").
	exact map[string]*tls.Certificate
	wild  map[string]*tls.Certificate
	// stamp is what the files looked like when they were read, for the poll.
	stamp []fileStamp
	// ocspUntil[i] is the next update of certs[i]'s stapled response (zero: none or no
	// limit); past it the staple is withheld.
	ocspUntil []time.Time
	// bare[i] is certs[i] without its staple, served once the staple has expired.
	bare []*tls.Certificate
}

// fileStamp is what a poll compares: a file's size and modification time.
type fileStamp struct {
	path  string
	size  int64
	mtime time.Time
	err   bool // the file could not be stat'ed
}

func stampFiles(paths []string) []fileStamp {
	out := make([]fileStamp, 0, len(paths))
	for _, p := range paths {
		st := fileStamp{path: p}
		if fi, err := os.Stat(p); err != nil {
			st.err = true
		} else {
			st.size, st.mtime = fi.Size(), fi.ModTime()
		}
		out = append(out, st)
	}
	return out
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].path != b[i].path || a[i].size != b[i].size || !a[i].mtime.Equal(b[i].mtime) || a[i].err != b[i].err {
			return false
		}
	}
	return true
}

// certFiles lists the files the certificates of t are read from.
func certFiles(t *FrontendTLS) []string {
	var out []string
	for _, c := range t.Certificates {
		out = append(out, c.CertFile, c.KeyFile)
		if c.OCSPFile != "" {
			out = append(out, c.OCSPFile)
		}
	}
	return out
}

// loadCertSet reads the certificates of t. Errors are *FieldErrors under path (such as
// "frontends[0].tls"); now is when the OCSP responses are checked against.
func loadCertSet(path string, t *FrontendTLS, now time.Time) (*certSet, error) {
	// Stamp before reading, so that a file changed while it is read is read again.
	cs := &certSet{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}, stamp: stampFiles(certFiles(t))}
	var errs errList
	for i, cc := range t.Certificates {
		p := fmt.Sprintf("%s.certificates[%d]", path, i)
		cert, until, err := loadCertificate(p, cc, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cs.certs = append(cs.certs, cert)
		cs.ocspUntil = append(cs.ocspUntil, until)
		bare := *cert
		bare.OCSPStaple = nil
		cs.bare = append(cs.bare, &bare)
		leaf := cert.Leaf
		names := leaf.DNSNames
		if len(names) == 0 && len(leaf.IPAddresses) == 0 && leaf.Subject.CommonName != "" {
			names = []string{leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(n)
			m, key := cs.exact, n
			if strings.HasPrefix(n, "*.") {
				m, key = cs.wild, n[2:]
			}
			if _, dup := m[key]; !dup { // the first certificate listed wins
				m[key] = cert
			}
		}
		for _, ip := range leaf.IPAddresses {
			if _, dup := cs.exact[ip.String()]; !dup {
				cs.exact[ip.String()] = cert
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cs, nil
}

// loadCertificate reads one certificate with its key and, if configured, its OCSP
// response; until is the response's next update.
func loadCertificate(p string, cc TLSCertificate, now time.Time) (*tls.Certificate, time.Time, error) {
	certPEM, err := os.ReadFile(cc.CertFile)
	if err != nil {
		return nil, time.Time{}, &FieldError{p + ".cert_file", err.Error()}
	}
	keyPEM, err := readKeyFile(cc.KeyFile)
	if err != nil {
		return nil, time.Time{}, &FieldError{p + ".key_file", err.Error()}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		field := ".key_file"
		if b, _ := pem.Decode(certPEM); b == nil || b.Type != "CERTIFICATE" {
			field = ".cert_file"
		}
		return nil, time.Time{}, &FieldError{p + field, fmt.Sprintf("%s with %s: %v", cc.CertFile, cc.KeyFile, err)}
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, time.Time{}, &FieldError{p + ".cert_file", fmt.Sprintf("%s: %v", cc.CertFile, err)}
		}
	}
	var until time.Time
	if cc.OCSPFile != "" {
		der, err := os.ReadFile(cc.OCSPFile)
		if err != nil {
			return nil, time.Time{}, &FieldError{p + ".ocsp_file", err.Error()}
		}
		if len(der) > 0 { // an empty file staples nothing, as in HAProxy
			resp, err := parseOCSP(der)
			if err == nil {
				err = resp.check(cert.Leaf, chainIssuer(&cert))
			}
			if err != nil {
				return nil, time.Time{}, &FieldError{p + ".ocsp_file", fmt.Sprintf("%s: %v", cc.OCSPFile, err)}
			}
			until = resp.nextUpdate
			if until.IsZero() || now.Before(until) {
				cert.OCSPStaple = der
			}
		}
	}
	return &cert, until, nil
}

// readKeyFile reads a private key file, refusing one that others (not its owner or
// group) may read or write: a key anyone on the machine can read is no longer private,
// and a reload must not go on serving with it silently. Group read is allowed, for the
// ssl-cert group convention (keys 0640 root:ssl-cert). OpenSSH refuses such keys the
// same way; HAProxy and nginx do not check.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if m := fi.Mode().Perm(); m&0o007 != 0 {
		return nil, fmt.Errorf("%s is a private key open to others (mode %04o): make it 0600 or 0640 (chmod o-rwx)", path, m)
	}
	return io.ReadAll(f)
}

// pick returns the certificate for server name sni: an exact name, else a wildcard one
// label up, else the first certificate. now withholds expired OCSP staples.
func (cs *certSet) pick(sni string, now time.Time) *tls.Certificate {
	c := cs.lookup(sni)
	for i, x := range cs.certs {
		if x == c {
			if u := cs.ocspUntil[i]; !u.IsZero() && !now.Before(u) {
				return cs.bare[i]
			}
			break
		}
	}
	return c
}

func (cs *certSet) lookup(sni string) *tls.Certificate {
	if sni != "" {
		name := strings.ToLower(strings.TrimSuffix(sni, "."))
		if c := cs.exact[name]; c != nil {
			return c
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := cs.wild[name[i+1:]]; c != nil {
				return c
			}
		}
	}
	return cs.certs[0]
}

// certStore serves the certificates of one frontend generation to handshakes and
// reloads them when their files change.
type certStore struct {
	path  string // "frontends[0].tls", for log lines
	name  string // the frontend's name
	cfg   *FrontendTLS
	clock clock.Clock
	set   atomic.Pointer[certSet]

	// mu serializes polls and guards failing.
	mu sync.Mutex
	// failing is the error of the last reload that failed, so that it is logged once.
	failing string
}

// getCertificate is the tls.Config callback: it reads the current set.
func (s *certStore) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.set.Load().pick(hello.ServerName, s.clock.Now()), nil
}

// poll reloads the certificates if a file changed since they were read; on failure the
// old ones keep serving. It reports whether a new set was loaded.
func (s *certStore) poll(d *Dataplane) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.set.Load()
	if sameStamps(cur.stamp, stampFiles(certFiles(s.cfg))) {
		return false
	}
	next, err := loadCertSet(s.path, s.cfg, s.clock.Now())
	if err != nil {
		if msg := err.Error(); msg != s.failing {
			s.failing = msg
			d.log.Error("certificate files changed but cannot be loaded; the old certificates keep serving",
				"frontend", s.name, "err", err)
		}
		return false
	}
	s.failing = ""
	s.set.Store(next)
	d.log.Info("certificates reloaded after a file change", "frontend", s.name)
	return true
}

// The OCSP response, as much of RFC 6960 as the checks need.

var oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}

type ocspResponseASN1 struct {
	Status   asn1.Enumerated
	Response ocspResponseBytes `asn1:"explicit,tag:0,optional"`
}

type ocspResponseBytes struct {
	Type     asn1.ObjectIdentifier
	Response []byte
}

type ocspBasicResponse struct {
	TBS       ocspResponseData
	Algorithm asn1.RawValue
	Signature asn1.BitString
	Certs     []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type ocspResponseData struct {
	Raw        asn1.RawContent
	Version    int           `asn1:"optional,default:0,explicit,tag:0"`
	Responder  asn1.RawValue // [1] Name or [2] KeyHash
	ProducedAt time.Time     `asn1:"generalized"`
	Responses  []ocspSingleResponse
	Extensions []asn1.RawValue `asn1:"explicit,tag:1,optional"`
}

type ocspSingleResponse struct {
	CertID     ocspCertID
	Status     asn1.RawValue   // [0] good, [1] revoked, [2] unknown
	ThisUpdate time.Time       `asn1:"generalized"`
	NextUpdate time.Time       `asn1:"generalized,explicit,tag:0,optional"`
	Extensions []asn1.RawValue `asn1:"explicit,tag:1,optional"`
}

type ocspCertID struct {
	HashAlgorithm  asn1.RawValue
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	Serial         *big.Int
}

// ocspStatus is a parsed OCSP response: the single responses it holds.
type ocspStatus struct {
	responses  []ocspSingleResponse
	nextUpdate time.Time // of the response that check matched
}

// parseOCSP decodes a DER OCSP response and checks that it is a successful basic one.
func parseOCSP(der []byte) (*ocspStatus, error) {
	var r ocspResponseASN1
	rest, err := asn1.Unmarshal(der, &r)
	if err != nil {
		return nil, fmt.Errorf("not a DER OCSP response: %v", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("trailing data after the OCSP response")
	}
	if r.Status != 0 {
		return nil, fmt.Errorf("OCSP response status is %d, not successful (0)", r.Status)
	}
	if !r.Response.Type.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("OCSP response type %v is not id-pkix-ocsp-basic", r.Response.Type)
	}
	var b ocspBasicResponse
	if rest, err := asn1.Unmarshal(r.Response.Response, &b); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed basic OCSP response: %v", err)
	}
	if len(b.TBS.Responses) == 0 {
		return nil, errors.New("OCSP response holds no certificate status")
	}
	return &ocspStatus{responses: b.TBS.Responses}, nil
}

// chainIssuer returns the certificate of cert's chain that issued its leaf, or nil when
// the chain does not hold it.
func chainIssuer(cert *tls.Certificate) *x509.Certificate {
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil && bytes.Equal(c.RawSubject, cert.Leaf.RawIssuer) {
			return c
		}
	}
	return nil
}

// OCSP CertID hash algorithms.
var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// sameIssuer reports whether id names leaf's issuer: the hash of the issuer's name
// (leaf's issuer field), and, when issuer is known, the hash of its public key.
func sameIssuer(id ocspCertID, leaf, issuer *x509.Certificate) bool {
	var alg pkix.AlgorithmIdentifier
	if _, err := asn1.Unmarshal(id.HashAlgorithm.FullBytes, &alg); err != nil {
		return false
	}
	var h hash.Hash
	switch {
	case alg.Algorithm.Equal(oidSHA1):
		h = sha1.New()
	case alg.Algorithm.Equal(oidSHA256):
		h = sha256.New()
	case alg.Algorithm.Equal(oidSHA384):
		h = sha512.New384()
	case alg.Algorithm.Equal(oidSHA512):
		h = sha512.New()
	default:
		return false
	}
	h.Write(leaf.RawIssuer)
	if !bytes.Equal(h.Sum(nil), id.IssuerNameHash) {
		return false
	}
	if issuer == nil {
		return true
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	h.Reset()
	h.Write(spki.PublicKey.RightAlign())
	return bytes.Equal(h.Sum(nil), id.IssuerKeyHash)
}

// check finds leaf's status in the response, by serial number and issuer (issuer nil:
// by the issuer's name alone): it must be there, and good.
func (o *ocspStatus) check(leaf, issuer *x509.Certificate) error {
	for _, r := range o.responses {
		if r.CertID.Serial == nil || r.CertID.Serial.Cmp(leaf.SerialNumber) != 0 || !sameIssuer(r.CertID, leaf, issuer) {
			continue
		}
		if r.Status.Class != asn1.ClassContextSpecific || r.Status.Tag != 0 {
			return fmt.Errorf("OCSP status of certificate %x is not good", leaf.SerialNumber)
		}
		if !r.NextUpdate.IsZero() && r.NextUpdate.Before(r.ThisUpdate) {
			return errors.New("OCSP response's next update is before its this update")
		}
		o.nextUpdate = r.NextUpdate
		return nil
	}
	return fmt.Errorf("OCSP response is not for this certificate (serial %x, issuer %s)", leaf.SerialNumber, leaf.Issuer)
}
