package node

// Liveness: a side channel that tells a backup that the master's lbd process died
// sooner than VRRP silence does. Every node with VRRP instances listens on a TCP port
// (node.vrrp.liveness_port) and holds the connections it accepts; a backup keeps one
// connection open to the master of each of its instances. When the master's process
// dies (SIGKILL, OOM, a crash) its kernel closes the socket: the backup reads EOF or a
// reset and tells the VIP manager (Manager.PeerGone), which takes over after Skew_Time
// instead of Master_Down_Interval. A hung master or a dead link closes nothing, and a
// connection that cannot be made proves nothing: both still wait for VRRP silence.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"lbd/vip"
)

// DefaultLivenessPort is node.vrrp.liveness_port's default.
const DefaultLivenessPort = 7948

const (
	// livenessPoll is how often the dialer looks for a new master.
	livenessPoll = 50 * time.Millisecond
	// livenessDialTimeout bounds one connection attempt.
	livenessDialTimeout = time.Second
	// livenessBackoffMin and livenessBackoffMax bound the wait between attempts.
	livenessBackoffMin = 100 * time.Millisecond
	livenessBackoffMax = 5 * time.Second
)

// livenessListener accepts liveness connections and holds them, reading until EOF,
// for as long as this process lives.
type livenessListener struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// listenLiveness listens on port on every address.
func listenLiveness(port int) (*livenessListener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	l := &livenessListener{ln: ln, conns: map[net.Conn]bool{}}
	l.wg.Go(l.accept)
	return l, nil
}

func (l *livenessListener) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		l.mu.Lock()
		if l.conns == nil { // closed meanwhile
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = true
		l.mu.Unlock()
		l.wg.Go(func() {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		})
	}
}

// Addr is the listening address.
func (l *livenessListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting and closes every held connection (the peers see a FIN).
func (l *livenessListener) Close() {
	l.ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.conns = nil
	l.mu.Unlock()
	l.wg.Wait()
}

// livenessDialer keeps one connection to each current master.
type livenessDialer struct {
	port int
	log  *slog.Logger
	// masters returns the masters to watch (zoned when link-local).
	masters func() []netip.Addr
	// gone is called with a master's address (without zone) when its connection ended
	// with EOF or a reset.
	gone func(netip.Addr)
	poll time.Duration
}

// run watches the masters until ctx is done.
func (d *livenessDialer) run(ctx context.Context) {
	type peer struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	peers := map[netip.Addr]peer{}
	defer func() {
		for _, p := range peers {
			p.cancel()
			<-p.done
		}
	}()
	t := time.NewTicker(d.poll)
	defer t.Stop()
	for {
		want := map[netip.Addr]bool{}
		for _, a := range d.masters() {
			want[a] = true
		}
		for a, p := range peers {
			if !want[a] {
				p.cancel()
				<-p.done
				delete(peers, a)
			}
		}
		for a := range want {
			if _, ok := peers[a]; ok {
				continue
			}
			pctx, cancel := context.WithCancel(ctx)
			p := peer{cancel: cancel, done: make(chan struct{})}
			peers[a] = p
			go func() {
				defer close(p.done)
				d.watch(pctx, a)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watch connects to addr again and again until ctx is done, reporting each connection
// that the master's kernel closed.
func (d *livenessDialer) watch(ctx context.Context, addr netip.Addr) {
	backoff := livenessBackoffMin
	for {
		connected, closed := probePeer(ctx, netip.AddrPortFrom(addr, uint16(d.port)), nil)
		if ctx.Err() != nil {
			return
		}
		if closed {
			d.log.Warn("the master's lbd process closed the liveness connection: it died", "master", addr.WithZone(""))
			d.gone(addr.WithZone(""))
		}
		if connected {
			backoff = livenessBackoffMin
		} else {
			backoff = min(2*backoff, livenessBackoffMax)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// probePeer connects to ap and reads until the connection ends. connected says whether
// it connected; closed whether it then ended with EOF or a reset, which only the peer's
// kernel sends (a timeout, an unreachable host or ctx being done is not closed).
// onConnect, when not nil, is called once connected.
func probePeer(ctx context.Context, ap netip.AddrPort, onConnect func()) (connected, closed bool) {
	dctx, cancel := context.WithTimeout(ctx, livenessDialTimeout)
	var nd net.Dialer
	c, err := nd.DialContext(dctx, "tcp", ap.String())
	cancel()
	if err != nil {
		return false, false
	}
	if onConnect != nil {
		onConnect()
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	_, err = io.Copy(io.Discard, c) // nil on EOF
	if ctx.Err() != nil {
		return true, false
	}
	return true, err == nil || errors.Is(err, syscall.ECONNRESET)
}

// vipMasters returns the masters of m's instances in BACKUP, link-local ones zoned with
// the instance's interface.
func vipMasters(m *vip.Manager) []netip.Addr {
	var out []netip.Addr
	for _, st := range m.Status() {
		if st.State != vip.Backup || !st.Master.IsValid() {
			continue
		}
		a := st.Master
		if a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
			a = a.WithZone(st.Interface)
		}
		out = append(out, a)
	}
	return out
}
