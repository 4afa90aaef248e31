package cluster

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var testNow = time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)

func TestCAIssueSaveLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.CanSign() || len(ca.Fingerprint()) != 64 {
		t.Fatalf("CanSign %v, fingerprint %q", ca.CanSign(), ca.Fingerprint())
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "tls", "ca.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v", st, err)
	}
	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.CanSign() || loaded.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("loaded CA: can sign %v, fingerprint %s, want %s", loaded.CanSign(), loaded.Fingerprint(), ca.Fingerprint())
	}

	n, err := NewNodeKey("node-a")
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	if err := loaded.IssueLocal(n, ips, testNow); err != nil {
		t.Fatal(err)
	}
	tc, err := n.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	leaf := tc.Leaf
	if leaf.Subject.CommonName != "node-a" || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "node-a" || !leaf.IPAddresses[0].Equal(ips[0]) {
		t.Errorf("leaf names: CN %q DNS %v IP %v", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	if got := leaf.NotAfter.Sub(testNow); got != NodeCertValidity {
		t.Errorf("validity %v, want %v", got, NodeCertValidity)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{u}, CurrentTime: testNow, DNSName: "node-a"}); err != nil {
			t.Errorf("verify for usage %v: %v", u, err)
		}
	}
	if err := n.Save(dir); err != nil {
		t.Fatal(err)
	}
	n2, err := LoadNodeKey(dir, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if string(n2.CertPEM) != string(n.CertPEM) {
		t.Error("loaded node certificate differs")
	}

	// A CA whose key is not on the node (a non-voter) loads but cannot sign.
	if err := os.Remove(filepath.Join(dir, "tls", "ca.key")); err != nil {
		t.Fatal(err)
	}
	certOnly, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if certOnly.CanSign() {
		t.Error("CA without its key can sign")
	}
	if err := certOnly.IssueLocal(n, ips, testNow); err == nil {
		t.Error("issued without the CA key")
	}
}

func TestKeyPermissionsRefused(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test", testNow)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := NewNodeKey("node-a")
	if err := ca.IssueLocal(n, nil, testNow); err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := n.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "node.key"} {
		p := filepath.Join(dir, "tls", f)
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
		_, errCA := LoadCA(dir)
		_, errNode := LoadNodeKey(dir, "node-a")
		err := errCA
		if f == "node.key" {
			err = errNode
		}
		if !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("%s with mode 0640: err %v, want ErrKeyPermissions", f, err)
		}
		t.Log(err)
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	ca, _ := NewCA("test", testNow)
	other, _ := NewCA("other", testNow)
	n, _ := NewNodeKey("node-a")
	csr, err := n.CSR(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(csr, "node-b", nil, testNow); err == nil {
		t.Error("issued node-b a certificate from node-a's request")
	}
	if _, err := ca.Issue(csr, "bad name!", nil, testNow); err == nil {
		t.Error("issued a certificate for an invalid name")
	}
	bad := append([]byte(nil), csr...)
	bad[len(bad)-5] ^= 0xff
	if _, err := ca.Issue(bad, "node-a", nil, testNow); err == nil {
		t.Error("issued from a request with a broken signature")
	}
	// A certificate from another CA is refused by SetCert.
	cert, err := other.Issue(csr, "node-a", nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetCert(cert, ca.CertPEM); err == nil {
		t.Error("SetCert took a certificate from another CA")
	}
	// A certificate for another key is refused too.
	m, _ := NewNodeKey("node-a")
	if err := n.SetCert(mustIssue(t, ca, m), ca.CertPEM); err == nil {
		t.Error("SetCert took a certificate for another key")
	}
}

func mustIssue(t *testing.T, ca *CA, n *NodeKey, ips ...net.IP) []byte {
	t.Helper()
	csr, err := n.CSR(ips)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(csr, n.Name, ips, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
