package cluster

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"time"
)

// Admission: which nodes may be raft voters and talk to raft. With TLS (WithTLS) the
// replicated state holds the admitted nodes, each with the certificate it was admitted
// with (entryMember): the node that bootstrapped the cluster, and every node the join
// exchange issued a certificate to (JoinServer.Record, on the leader, before the
// certificate is handed out). Holding the gossip key is not enough:
//
//   - the leader's reconcile (membership.go) adds a gossip member as a voter only if it
//     is admitted, not removed, and the raft address it advertises is the one it was
//     admitted with or an IP of its certificate;
//   - the TLS layer refuses a raft connection from a peer whose certificate is not the
//     one its name was admitted with, or that was removed (Remove, or a node that left),
//     so a removed node's certificate is refused although it has not expired.
//
// A node whose state holds no admitted node yet (a new node before raft has sent it
// the log) accepts every peer the cluster CA signed: it has to let the leader in to
// learn who is admitted. Without TLS there is no admission: every gossip member is
// trusted (the in-memory transport of the tests, plain TCP).

// AdmittedNode is a node admitted to the cluster, as the replicated state records it.
type AdmittedNode struct {
	Name string `json:"name"`
	// RaftAddr is the raft address it was admitted with; IPs are its certificate's.
	RaftAddr string   `json:"raft_addr,omitempty"`
	IPs      []string `json:"ips,omitempty"`
	// Serial (hex) and Fingerprint (SHA-256 of the DER, hex) name its certificate.
	Serial      string `json:"serial"`
	Fingerprint string `json:"fingerprint"`
	// Time is when it was admitted (the proposer's clock).
	Time time.Time `json:"time"`
	// Removed is set by Remove (or when the node leaves): its certificate is refused
	// and it is not added as a voter again unless it joins anew.
	Removed bool `json:"removed,omitempty"`
	// Index is the raft log index that last changed the record.
	Index uint64 `json:"index"`
}

// admittedRecord makes the record of a node admitted with cert.
func admittedRecord(name, raftAddr string, cert *x509.Certificate, now time.Time) AdmittedNode {
	ips := make([]string, 0, len(cert.IPAddresses))
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	sort.Strings(ips)
	return AdmittedNode{
		Name: name, RaftAddr: raftAddr, IPs: ips,
		Serial: cert.SerialNumber.Text(16), Fingerprint: CertFingerprint(cert),
		Time: now.UTC(),
	}
}

// Admitted returns the admitted nodes, removed ones included, by name.
func (c *Cluster) Admitted() []AdmittedNode { return c.fsm.admittedList() }

// admit records, through raft, that name was admitted with cert. It must run on the
// leader.
func (c *Cluster) admit(ctx context.Context, name, raftAddr string, cert *x509.Certificate) error {
	if name != cert.Subject.CommonName {
		return fmt.Errorf("admitting %s: the certificate is %s's", name, cert.Subject.CommonName)
	}
	data, err := encodeEntry(entryMember, &memberEntry{Op: memberAdmit, Node: admittedRecord(name, raftAddr, cert, c.clock.Now())})
	if err != nil {
		return err
	}
	if _, err := c.propose(ctx, data); err != nil {
		return fmt.Errorf("admitting %s: %w", name, err)
	}
	c.log.Info("node admitted", "member", name, "serial", cert.SerialNumber.Text(16))
	c.poke()
	return nil
}

// markRemoved records, through raft, that name was removed.
func (c *Cluster) markRemoved(ctx context.Context, name string) error {
	data, err := encodeEntry(entryMember, &memberEntry{Op: memberRemove, Node: AdmittedNode{Name: name, Time: c.clock.Now().UTC()}})
	if err != nil {
		return err
	}
	if _, err := c.propose(ctx, data); err != nil {
		return fmt.Errorf("recording the removal of %s: %w", name, err)
	}
	return nil
}

// peerAdmitted is the TLS layer's check of a raft peer's verified certificate (with
// admission on).
func (c *Cluster) peerAdmitted(name string, cert *x509.Certificate) error {
	rec, ok, known := c.fsm.admittedNode(name)
	switch {
	case !known:
		return nil // a new node that has not learned who is admitted yet
	case !ok:
		return errors.New("not admitted to the cluster")
	case rec.Removed:
		return errors.New("removed from the cluster")
	case rec.Fingerprint != CertFingerprint(cert):
		return fmt.Errorf("certificate serial %s is not the one it was admitted with (serial %s)", cert.SerialNumber.Text(16), rec.Serial)
	}
	return nil
}

// voterAllowed tells the reconcile whether a gossip member advertising raftAddr may be
// a voter: always without admission; with it, if it is admitted, not removed, and
// raftAddr is the address it was admitted with or on an IP of its certificate.
func (c *Cluster) voterAllowed(name, raftAddr string) error {
	if !c.admission {
		return nil
	}
	rec, ok, _ := c.fsm.admittedNode(name)
	switch {
	case !ok:
		return errors.New("it was not admitted (no certificate from the join exchange)")
	case rec.Removed:
		return errors.New("it was removed (it must join again)")
	case rec.RaftAddr == raftAddr:
		return nil
	}
	host, _, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return fmt.Errorf("raft address %q: %w", raftAddr, err)
	}
	if ip := net.ParseIP(host); ip != nil && slices.Contains(rec.IPs, ip.String()) {
		return nil
	}
	return fmt.Errorf("its raft address %s is neither the one it was admitted with (%s) nor on its certificate's IPs %v", raftAddr, rec.RaftAddr, rec.IPs)
}

// applyMember applies an entryMember.
func (f *fsm) applyMember(index uint64, e *memberEntry) any {
	if !nameRE.MatchString(e.Node.Name) {
		return fmt.Errorf("raft entry %d refused: node name %q is not valid", index, e.Node.Name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	admitted := make(map[string]AdmittedNode, len(f.admitted)+1)
	for k, v := range f.admitted {
		admitted[k] = v
	}
	switch e.Op {
	case memberAdmit:
		if e.Node.Fingerprint == "" {
			return fmt.Errorf("raft entry %d refused: admitting %s without a certificate fingerprint", index, e.Node.Name)
		}
		rec := e.Node
		rec.Removed = false
		rec.Index = index
		admitted[rec.Name] = rec
	case memberRemove:
		rec, ok := admitted[e.Node.Name]
		if !ok {
			rec = AdmittedNode{Name: e.Node.Name, Time: e.Node.Time}
		}
		rec.Removed = true
		rec.Index = index
		admitted[rec.Name] = rec
	default:
		err := fmt.Errorf("raft entry %d refused: member operation %q is not known to this version", index, e.Op)
		f.log.Error("refusing raft entry; upgrade this node to the version the other nodes run", "index", index, "err", err)
		return err
	}
	f.admitted = admitted
	return nil
}

// admittedNode returns name's record; known is false when no node is recorded at all.
func (f *fsm) admittedNode(name string) (rec AdmittedNode, ok, known bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rec, ok = f.admitted[name]
	return rec, ok, len(f.admitted) > 0
}

func (f *fsm) admittedList() []AdmittedNode {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]AdmittedNode, 0, len(f.admitted))
	for _, rec := range f.admitted {
		rec.IPs = slices.Clone(rec.IPs)
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
