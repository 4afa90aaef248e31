package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The cluster CA signs every node's certificate; raft's mutual TLS (transport_tls.go)
// trusts nothing else. It is an ECDSA P-256 key and a self-signed certificate made once,
// by the first node, at cluster init. Its key lives on the voters only (node replicates
// it to them as a replicated file); every node keeps the CA certificate, its own key
// and its own certificate in the state directory's tls/ subdirectory:
//
//	tls/ca.crt    the CA certificate (0644: it is public)
//	tls/ca.key    the CA key, voters only (0600)
//	tls/node.crt  this node's certificate, signed by the CA (0644)
//	tls/node.key  this node's key (0600); it never leaves the node
//
// Keys are refused when their file is readable or writable by anyone but the owner
// (ErrKeyPermissions): a key that others could read must be treated as leaked.
const (
	tlsDirName  = "tls"
	caCertFile  = "ca.crt"
	caKeyFile   = "ca.key"
	nodeCrtFile = "node.crt"
	nodeKeyFile = "node.key"

	// CAValidity is how long the cluster CA is valid: long, since replacing it means
	// re-issuing every node's certificate.
	CAValidity = 10 * 365 * 24 * time.Hour
	// NodeCertValidity is how long a node certificate is valid; renew it (Issue
	// again with a new CSR) before then.
	NodeCertValidity = 365 * 24 * time.Hour
	// certBackdate is how far before "now" a certificate's validity starts, for
	// clocks that disagree by a little.
	certBackdate = 5 * time.Minute
)

// ErrKeyPermissions: a private key file can be read or written by others than its
// owner (its mode is not 0600 or stricter); it is refused.
var ErrKeyPermissions = errors.New("private key file is accessible to others")

// CA is the cluster's certificate authority: its certificate and, on voters, its key.
type CA struct {
	// Cert is the CA certificate; CertPEM its PEM encoding, as written to ca.crt.
	Cert    *x509.Certificate
	CertPEM []byte
	// key is nil when only the certificate was loaded (LoadCACert).
	key crypto.Signer
}

// NewCA makes a new cluster CA, valid from now for CAValidity. clusterName goes into
// its subject, to tell clusters apart in a certificate dump.
func NewCA(clusterName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "lbd cluster CA " + clusterName, Organization: []string{"lbd"}},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Fingerprint is the SHA-256 of the CA certificate (DER), lowercase hex: what a join
// token carries so that the joiner trusts this CA and no other.
func (ca *CA) Fingerprint() string { return CertFingerprint(ca.Cert) }

// CertFingerprint is the SHA-256 of a certificate's DER encoding, lowercase hex.
func CertFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// CanSign reports whether the CA's key is loaded (voters), so that it can issue.
func (ca *CA) CanSign() bool { return ca.key != nil }

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// KeyPEM returns the CA key in PEM (PKCS #8), for replicating it to the other voters.
// Never print it.
func (ca *CA) KeyPEM() ([]byte, error) {
	if ca.key == nil {
		return nil, errors.New("the CA key is not loaded on this node")
	}
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("encoding CA key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

// ParseCA reads a CA from its certificate PEM and, if keyPEM is not nil, its key PEM
// (checking that the key matches the certificate).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: not a CA certificate")
	}
	ca := &CA{Cert: cert, CertPEM: certPEM}
	if keyPEM != nil {
		key, err := parseKeyPEM(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("CA key: %w", err)
		}
		if !publicKeysEqual(key.Public(), cert.PublicKey) {
			return nil, errors.New("CA key does not match the CA certificate")
		}
		ca.key = key
	}
	return ca, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// tlsDir is the state directory's tls/ subdirectory, created with mode 0700.
func tlsDir(stateDir string) (string, error) {
	d := filepath.Join(stateDir, tlsDirName)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("creating tls directory: %w", err)
	}
	if err := os.Chmod(d, 0o700); err != nil {
		return "", fmt.Errorf("securing tls directory: %w", err)
	}
	return d, nil
}

// Save writes the CA certificate and, if loaded, its key under stateDir/tls.
func (ca *CA) Save(stateDir string) error {
	d, err := tlsDir(stateDir)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(d, caCertFile), ca.CertPEM, 0o644); err != nil {
		return err
	}
	if ca.key == nil {
		return nil
	}
	k, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(d, caKeyFile), k, 0o600)
}

// LoadCA reads the CA certificate from stateDir/tls and its key if the node has it
// (a voter); a node without the key gets a CA that cannot sign. A key file readable by
// others is refused with ErrKeyPermissions.
func LoadCA(stateDir string) (*CA, error) {
	d := filepath.Join(stateDir, tlsDirName)
	certPEM, err := os.ReadFile(filepath.Join(d, caCertFile))
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := readPrivateFile(filepath.Join(d, caKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		keyPEM, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseCA(certPEM, keyPEM)
}

// readPrivateFile reads a file holding a private key, refusing it if its mode lets
// anyone but the owner read or write it.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o; want 0600 (chmod 600 %s, and treat the key as leaked if others could read it): %w", path, m, path, ErrKeyPermissions)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	return b, nil
}

// writeFileAtomic writes a file through a temporary file renamed over it, with mode
// set before any byte is written.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// NodeKey is a node's own TLS identity: its key and, once the CA has signed it, its
// certificate and the CA's.
type NodeKey struct {
	Name string
	key  crypto.Signer
	// CertPEM is the node's certificate, signed by the CA; CACertPEM the CA's.
	CertPEM, CACertPEM []byte
}

// NewNodeKey makes a new ECDSA P-256 key for the node called name.
func NewNodeKey(name string) (*NodeKey, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("node name %q is not valid", name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating node key: %w", err)
	}
	return &NodeKey{Name: name, key: key}, nil
}

// CSR makes a certificate request for the node's key, naming the node and the IPs its
// raft and gossip listen on. The CA decides what goes in the certificate (Issue); the
// request proves that the node holds the key.
func (n *NodeKey) CSR(ips []net.IP) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: n.Name},
		DNSNames:    []string{n.Name},
		IPAddresses: ips,
	}, n.key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate request: %w", err)
	}
	return der, nil
}

// Issue signs a node certificate from a CSR (DER), valid from now for
// NodeCertValidity: subject and DNS SAN the node's name, IP SANs the given IPs (its
// raft and gossip addresses), usable as TLS server and client. The CSR must be signed
// by its key and name the same node. Renewal is the same call with a new CSR.
func (ca *CA) Issue(csrDER []byte, name string, ips []net.IP, now time.Time) (certPEM []byte, err error) {
	if ca.key == nil {
		return nil, errors.New("issuing certificate: the CA key is not on this node")
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("issuing certificate: node name %q is not valid", name)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("issuing certificate: parsing request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("issuing certificate: request signature: %w", err)
	}
	if csr.Subject.CommonName != name {
		return nil, fmt.Errorf("issuing certificate: request names %q, not %q", csr.Subject.CommonName, name)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(NodeCertValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"lbd"}},
		DNSNames:     []string{name},
		IPAddresses:  ips,
		NotBefore:    now.Add(-certBackdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issuing certificate: %w", err)
	}
	return pemBlock("CERTIFICATE", der), nil
}

// IssueLocal gives the node its certificate straight from the CA (the first node at
// cluster init, or a voter renewing its own).
func (ca *CA) IssueLocal(n *NodeKey, ips []net.IP, now time.Time) error {
	csr, err := n.CSR(ips)
	if err != nil {
		return err
	}
	cert, err := ca.Issue(csr, n.Name, ips, now)
	if err != nil {
		return err
	}
	return n.SetCert(cert, ca.CertPEM)
}

// SetCert installs the node's certificate and the CA's, checking that the certificate
// is for this key and this node, and chains to the CA.
func (n *NodeKey) SetCert(certPEM, caCertPEM []byte) error {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	ca, err := ParseCA(caCertPEM, nil)
	if err != nil {
		return err
	}
	if !publicKeysEqual(n.key.Public(), cert.PublicKey) {
		return errors.New("node certificate is not for this node's key")
	}
	if !slices.Contains(cert.DNSNames, n.Name) {
		return fmt.Errorf("node certificate names %v, not %q", cert.DNSNames, n.Name)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: cert.NotBefore}); err != nil {
		return fmt.Errorf("node certificate is not signed by the CA: %w", err)
	}
	n.CertPEM, n.CACertPEM = certPEM, caCertPEM
	return nil
}

// Certificate returns the node's certificate for crypto/tls: the leaf and the CA, so
// that a joiner can find the CA by its fingerprint in the chain.
func (n *NodeKey) Certificate() (tls.Certificate, error) {
	if n.CertPEM == nil {
		return tls.Certificate{}, errors.New("node has no certificate yet")
	}
	leaf, err := parseCertPEM(n.CertPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	ca, err := parseCertPEM(n.CACertPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: n.key, Leaf: leaf}, nil
}

// Save writes the node's key (0600), certificate and the CA certificate under
// stateDir/tls.
func (n *NodeKey) Save(stateDir string) error {
	d, err := tlsDir(stateDir)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(n.key)
	if err != nil {
		return fmt.Errorf("encoding node key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(d, nodeKeyFile), pemBlock("PRIVATE KEY", der), 0o600); err != nil {
		return err
	}
	if n.CertPEM == nil {
		return nil
	}
	if err := writeFileAtomic(filepath.Join(d, nodeCrtFile), n.CertPEM, 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(d, caCertFile), n.CACertPEM, 0o644)
}

// LoadNodeKey reads the node's key, certificate and the CA certificate from
// stateDir/tls. A key file readable by others is refused with ErrKeyPermissions.
func LoadNodeKey(stateDir, name string) (*NodeKey, error) {
	d := filepath.Join(stateDir, tlsDirName)
	keyPEM, err := readPrivateFile(filepath.Join(d, nodeKeyFile))
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	n := &NodeKey{Name: name, key: key}
	certPEM, err := os.ReadFile(filepath.Join(d, nodeCrtFile))
	if err != nil {
		return nil, fmt.Errorf("reading node certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(d, caCertFile))
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	if err := n.SetCert(certPEM, caPEM); err != nil {
		return nil, err
	}
	return n, nil
}
