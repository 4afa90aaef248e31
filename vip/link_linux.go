package vip

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link state for track_interface.
//
// A link counts as up when it is administratively up (IFF_UP) and has carrier
// (IFF_RUNNING, "LOWER_UP" in `ip link`), as keepalived judges it: a cable pulled, a
// switch port shut or a veth whose peer went down all read as down at once, through
// netlink, without waiting for VRRP timers.

// LinkUp reports whether the link ifname is up and has carrier, in the calling thread's
// network namespace.
func LinkUp(ifname string) (bool, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("looking up link %s: %w", ifname, err)
	}
	return linkAttrsUp(link.Attrs()), nil
}

func linkAttrsUp(a *netlink.LinkAttrs) bool {
	return a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_RUNNING != 0
}

// WatchLinks calls fn with the index and state of every link when it starts, and again
// each time a link's state or index changes (a link that is deleted reports index 0
// and down; a renamed link reports its old name so and its new name with its index
// and state; a link deleted and created again under the same name reports its new
// index, which Manager.SetLinkIndex needs to reopen the VRRP sockets on it). It blocks until ctx is done, then
// returns ctx.Err(), or returns earlier with an error when the netlink subscription
// fails (for example ENOBUFS after the kernel dropped events): the caller then re-reads
// LinkUp and calls WatchLinks again. fn is called from the calling goroutine, one call
// at a time. WatchLinks watches the calling thread's network namespace.
func WatchLinks(ctx context.Context, fn func(ifname string, index int, up bool)) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	var (
		mu      sync.Mutex
		recvErr error // the last fatal error reported by the subscription; guarded by mu
	)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			if errors.Is(err, netlink.ErrDumpInterrupted) {
				return // the dump is re-sent as events; nothing lost for our purpose
			}
			mu.Lock()
			recvErr = err
			mu.Unlock()
		},
	})
	if err != nil {
		return fmt.Errorf("subscribing to link updates: %w", err)
	}
	defer func() {
		close(done)
		for range updates { // let the subscription goroutine finish
		}
	}()

	type linkState struct {
		name string
		up   bool
	}
	known := map[int32]linkState{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-updates:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				mu.Lock()
				err := recvErr
				mu.Unlock()
				if err == nil {
					err = errors.New("subscription closed")
				}
				return fmt.Errorf("watching links: %w", err)
			}
			a := u.Link.Attrs()
			prev, seen := known[u.Index]
			if u.Header.Type == unix.RTM_DELLINK {
				delete(known, u.Index)
				fn(a.Name, 0, false)
				continue
			}
			cur := linkState{name: a.Name, up: linkAttrsUp(a)}
			if seen && prev == cur {
				continue
			}
			known[u.Index] = cur
			if seen && prev.name != cur.name {
				fn(prev.name, 0, false)
			}
			fn(cur.name, int(u.Index), cur.up)
		}
	}
}
