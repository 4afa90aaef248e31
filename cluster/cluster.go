package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"lbd/internal/clock"
)

// Cluster is one node's cluster agent: gossip membership and the raft-replicated state.
// Create it with New; Close stops it.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	clock  clock.Clock
	fsm    *fsm
	stores *stores
	gossip *gossip

	// raft is the running raft; RecoverForce replaces it (and its transport).
	raft         atomic.Pointer[raft.Raft]
	newTransport func() (raft.Transport, error)
	// admission is on with WithTLS: only admitted nodes become voters and talk to
	// raft (admission.go); tlsNode is then this node's TLS identity.
	admission bool
	tlsNode   *NodeKey
	// joins serves the join exchange on the raft port (WithTLS, ServeJoins); nil:
	// join connections are closed.
	joins atomic.Pointer[JoinServer]
	// tokenMu serialises changes of the replicated join token list (secrets.go).
	tokenMu sync.Mutex
	// lifeMu serialises Close and RecoverForce; it guards trans.
	lifeMu sync.Mutex
	trans  raft.Transport

	observations chan raft.Observation
	observer     *raft.Observer
	nudge        chan struct{} // the member table changed: reconcile
	done         chan struct{} // closed by Close
	wg           sync.WaitGroup
	closeOnce    sync.Once
	closeErr     error

	// mu guards raftAddr, this node's raft address, and failing: the voters (by
	// name) the leader last failed to heartbeat. failing is filled from raft's
	// observations while this node leads, kept after it steps down (so that a write
	// refused for want of quorum can say who is missing), and cleared when a leader is
	// elected.
	mu       sync.Mutex
	raftAddr string
	failing  map[string]bool
	// notVoter (under mu) holds, by member, why the leader last did not make a
	// gossip member a voter, so that it is logged once.
	notVoter map[string]string
}

// r returns the running raft.
func (c *Cluster) r() *raft.Raft { return c.raft.Load() }

// Option changes how New builds the agent.
type Option func(*options)

type options struct {
	log           *slog.Logger
	clock         clock.Clock
	onMember      func(MemberEvent)
	raftTransport func() (raft.Transport, error) // tests: raft's InmemTransport
	tls           *TLSOptions                    // WithTLS: raft over mutual TLS
	segmentSize   int
	trailingLogs  *uint64
}

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock that stamps config changes and drives the agent's own
// polling and periodic work (default: clock.System()). raft and memberlist keep
// their own timers on the system clock.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithMemberEvents sets a callback for member changes. It is called from gossip's
// goroutines, in order per member, and must not block or call into the Cluster except
// Members.
func WithMemberEvents(fn func(MemberEvent)) Option { return func(o *options) { o.onMember = fn } }

// New starts the agent: it opens the state directory (recovering raft's state from it),
// listens for gossip and raft, and runs raft. A node that was in a cluster carries on
// (Join to find the others again); a new node waits for Bootstrap or Join.
func New(cfg Config, opts ...Option) (c *Cluster, err error) {
	o := options{log: slog.Default(), clock: clock.System(), segmentSize: walSegmentSize}
	for _, opt := range opts {
		opt(&o)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c = &Cluster{
		cfg:          cfg,
		log:          o.log.With("node", cfg.Name),
		clock:        o.clock,
		observations: make(chan raft.Observation, 64),
		nudge:        make(chan struct{}, 1),
		done:         make(chan struct{}),
		failing:      map[string]bool{},
		notVoter:     map[string]string{},
	}
	var closers []io.Closer
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				err = errors.Join(err, closers[i].Close())
			}
		}
	}()

	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	fs, err := newFileStore(filepath.Join(cfg.StateDir, filesDirName))
	if err != nil {
		return nil, err
	}
	if c.fsm, err = newFSM(c.log.With("component", "fsm"), fs); err != nil {
		return nil, err
	}
	if c.stores, err = openStores(cfg.StateDir, c.log, o.segmentSize); err != nil {
		return nil, err
	}
	closers = append(closers, c.stores.wal)

	c.newTransport = o.raftTransport
	if c.newTransport == nil && o.tls != nil {
		c.newTransport = c.tlsTransport(*o.tls)
		c.admission, c.tlsNode = true, o.tls.Node
	}
	if c.newTransport == nil {
		c.newTransport = func() (raft.Transport, error) { return newTCPTransport(&c.cfg, c.log) }
	}
	if c.trans, err = c.newTransport(); err != nil {
		return nil, err
	}
	if cl, ok := c.trans.(io.Closer); ok {
		closers = append(closers, cl)
	}
	c.raftAddr = string(c.trans.LocalAddr())

	if c.gossip, err = newGossip(&c.cfg, c.raftAddr, c.log, o.onMember, c.poke); err != nil {
		return nil, err
	}
	closers = append(closers, closerFunc(c.gossip.ml.Shutdown))

	rc := raftConfig(&c.cfg, c.log, o.trailingLogs)
	r, err := raft.NewRaft(rc, c.fsm, c.stores.wal, c.stores.wal, c.stores.snaps, c.trans)
	if err != nil {
		return nil, fmt.Errorf("starting raft: %w", err)
	}
	c.observer = raft.NewObserver(c.observations, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(c.observer)
	c.raft.Store(r)
	c.wg.Add(1)
	go c.run()
	c.log.Info("cluster agent started", "gossip", c.gossip.addr(), "raft", c.RaftAddr(), "role", cfg.Role)
	return c, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// poke asks the run loop to reconcile soon; it never blocks.
func (c *Cluster) poke() {
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// Close stops the agent without leaving the cluster (use Leave for that): it takes a
// snapshot, so that a restart shows the last applied state even before it reaches a
// majority again, then stops raft and gossip and closes the state directory. Safe to
// call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.lifeMu.Lock()
		defer c.lifeMu.Unlock()
		close(c.done)
		var errs []error
		if c.r().State() != raft.Shutdown {
			if err := c.r().Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) && !errors.Is(err, raft.ErrRaftShutdown) {
				c.log.Warn("no snapshot taken on close", "err", err)
			}
		}
		c.r().DeregisterObserver(c.observer)
		errs = append(errs, c.r().Shutdown().Error())
		c.wg.Wait()
		errs = append(errs, c.gossip.ml.Shutdown())
		errs = append(errs, closeTransport(c.trans))
		errs = append(errs, c.stores.wal.Close())
		c.closeErr = errors.Join(errs...)
		c.log.Info("cluster agent stopped")
	})
	return c.closeErr
}

// closeTransport closes a raft transport and, for a NetworkTransport, its pooled
// connections to the peers: NetworkTransport.Close leaves those open, and the peers'
// connection handlers waiting on them for as long as the peers run.
func closeTransport(t raft.Transport) error {
	if nt, ok := t.(*raft.NetworkTransport); ok {
		nt.CloseStreams()
	}
	if cl, ok := t.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// GossipAddr is the address other nodes reach this node's gossip at: a seed for Join.
func (c *Cluster) GossipAddr() string { return c.gossip.addr() }

// RaftAddr is the address other nodes reach this node's raft at.
func (c *Cluster) RaftAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raftAddr
}

// Name is the node's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// Config returns the current cluster-wide document and its metadata; ok is false
// before the first one is committed (as far as this node has applied).
func (c *Cluster) Config() (v ConfigVersion, ok bool) { return c.fsm.current() }

// History returns the kept versions of the document (the last 50), oldest first.
func (c *Cluster) History() []ConfigVersion { return c.fsm.History() }

// Files lists the replicated files, by name.
func (c *Cluster) Files() []FileInfo { return c.fsm.fileInfos() }

// File returns a replicated file's content.
func (c *Cluster) File(name string) ([]byte, bool) { return c.fsm.file(name) }

// FilePath is where a replicated file is on disk (mode 0600), for programs that want
// a path, such as a TLS certificate loader. The file may not exist.
func (c *Cluster) FilePath(name string) (string, error) {
	if err := checkFileName(name); err != nil {
		return "", err
	}
	return c.fsm.store.path(name), nil
}

// SetMeta publishes this node's metadata through gossip. It fails with
// ErrMetaTooLarge, keeping what was published before, if it does not fit.
func (c *Cluster) SetMeta(m Meta) error {
	return c.gossip.setMeta(func(n *nodeMeta) { n.Meta = m })
}

// Members returns every node gossip knows of (alive, dead or left), by name, with
// whether raft counts it as a voter.
func (c *Cluster) Members() []Member {
	ms := c.gossip.snapshot()
	servers, _ := c.servers()
	for i := range ms {
		if s, ok := servers[ms[i].Name]; ok && s.Suffrage == raft.Voter {
			ms[i].Voter = true
		}
	}
	return ms
}

// Keys lists the installed gossip keys.
func (c *Cluster) Keys() []KeyInfo { return c.gossip.keys() }

// InstallKey adds a gossip key (base64), used to decrypt at once. Rotation: install the
// new key on every node, then UseKey on every node, then RemoveKey the old one.
func (c *Cluster) InstallKey(key string) error {
	return c.gossip.keyOp("installing gossip key", key, c.gossip.keyring.AddKey)
}

// UseKey makes an installed key the one this node encrypts with.
func (c *Cluster) UseKey(key string) error {
	return c.gossip.keyOp("using gossip key", key, c.gossip.keyring.UseKey)
}

// RemoveKey removes an installed key other than the one in use.
func (c *Cluster) RemoveKey(key string) error {
	return c.gossip.keyOp("removing gossip key", key, c.gossip.keyring.RemoveKey)
}

// Server is a member of raft's configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Status is this node's view of raft.
type Status struct {
	Name string
	// State is leader, follower, candidate or shutdown.
	State                 string
	LeaderID, LeaderAddr  string
	Term                  uint64
	CommitIndex           uint64
	AppliedIndex          uint64
	LastIndex             uint64
	LastContact           time.Time // with the leader; zero on the leader itself
	Servers               []Server
	ConfigVersion         uint64
	RefusedUnknownEntries uint64
}

// Status returns this node's view of raft.
func (c *Cluster) Status() Status {
	addr, id := c.r().LeaderWithID()
	st := Status{
		Name:                  c.cfg.Name,
		State:                 stateName(c.r().State()),
		LeaderID:              string(id),
		LeaderAddr:            string(addr),
		Term:                  c.r().CurrentTerm(),
		CommitIndex:           c.r().CommitIndex(),
		AppliedIndex:          c.r().AppliedIndex(),
		LastIndex:             c.r().LastIndex(),
		RefusedUnknownEntries: c.fsm.refused.Load(),
	}
	if st.State != "leader" {
		st.LastContact = c.r().LastContact()
	}
	if v, ok := c.fsm.current(); ok {
		st.ConfigVersion = v.Version
	}
	if f := c.r().GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Servers = append(st.Servers, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
		}
	}
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

// servers returns raft's latest configuration by node name.
func (c *Cluster) servers() (map[string]raft.Server, error) {
	f := c.r().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	out := map[string]raft.Server{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s
	}
	return out, nil
}
