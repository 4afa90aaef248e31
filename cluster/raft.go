package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// Layout of the state directory:
//
//	raft/wal/        the raft log and stable store (raft-wal segments and meta.db)
//	raft/snapshots/  raft file snapshots (the last snapshotsRetained)
//	files/           the replicated files, one per name, mode 0600
//	gossip.keyring   the gossip keys, mode 0600
//
// raft/ and files/ are mode 0700: raft's log and snapshots carry the replicated keys.
const (
	raftDirName       = "raft"
	walDirName        = "wal"
	filesDirName      = "files"
	snapshotsRetained = 2
	// walSegmentSize is the size of a raft-wal segment file (preallocated). Config
	// documents and certificates are small; 16 MiB holds thousands of them.
	walSegmentSize = 16 << 20
)

// stores are raft's log, stable and snapshot stores under the state directory.
type stores struct {
	wal   *wal.WAL
	snaps *raft.FileSnapshotStore
}

func openStores(stateDir string, log *slog.Logger, segmentSize int) (*stores, error) {
	raftDir := filepath.Join(stateDir, raftDirName)
	walDir := filepath.Join(raftDir, walDirName)
	for _, d := range []string{raftDir, walDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating raft directory: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("securing raft directory: %w", err)
		}
	}
	w, err := wal.Open(walDir, wal.WithLogger(newHCLog(log, "raft-wal")), wal.WithSegmentSize(segmentSize))
	if err != nil {
		return nil, fmt.Errorf("opening raft log in %s: %w", walDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, snapshotsRetained, newHCLog(log, "raft-snapshots"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("opening raft snapshots in %s: %w", raftDir, err)
	}
	return &stores{wal: w, snaps: snaps}, nil
}

// raftTransportTimeout bounds one raft RPC's I/O on the TCP transport.
const raftTransportTimeout = 10 * time.Second

// newTCPTransport listens for raft on cfg.RaftBind and works out the address other
// nodes reach it at (see Config.RaftAdvertise).
func newTCPTransport(cfg *Config, log *slog.Logger) (*raft.NetworkTransport, error) {
	bind := netip.MustParseAddrPort(cfg.RaftBind) // checked by Validate
	var adv net.Addr
	if cfg.RaftAdvertise != "" {
		adv = net.TCPAddrFromAddrPort(netip.MustParseAddrPort(cfg.RaftAdvertise))
	} else if bind.Addr().IsUnspecified() {
		ip, err := advertiseIP(cfg)
		if err != nil {
			return nil, err
		}
		adv = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, bind.Port()))
	}
	t, err := raft.NewTCPTransportWithLogger(cfg.RaftBind, adv, 3, raftTransportTimeout, newHCLog(log, "raft-net"))
	if err != nil {
		return nil, fmt.Errorf("starting raft transport on %s: %w", cfg.RaftBind, err)
	}
	return t, nil
}

// advertiseIP picks the IP to advertise for raft when it binds to all addresses: the
// gossip advertise IP, else the gossip bind IP, else the first private IPv4 address
// (as memberlist picks it for gossip).
func advertiseIP(cfg *Config) (netip.Addr, error) {
	if cfg.GossipAdvertise != "" {
		return netip.MustParseAddrPort(cfg.GossipAdvertise).Addr(), nil
	}
	if g := netip.MustParseAddrPort(cfg.GossipBind).Addr(); !g.IsUnspecified() {
		return g, nil
	}
	s, err := sockaddr.GetPrivateIP()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding an address to advertise for raft: %w", err)
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errors.New("no private IP address to advertise for raft: set raft_advertise")
	}
	return ip, nil
}

// raftConfig turns the timings into raft's config.
// trailingLogs, if not nil, replaces raft's default (tests: 0, so that a snapshot
// leaves no log behind and a new node must install it).
func raftConfig(cfg *Config, log *slog.Logger, trailingLogs *uint64) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.HeartbeatTimeout = cfg.Timing.RaftHeartbeatTimeout
	rc.ElectionTimeout = cfg.Timing.RaftElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Timing.RaftLeaderLease
	rc.CommitTimeout = cfg.Timing.RaftCommitTimeout
	rc.Logger = newHCLog(log, "raft")
	if trailingLogs != nil {
		rc.TrailingLogs = *trailingLogs
	}
	return rc
}
