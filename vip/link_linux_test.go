//go:build linux

package vip

import (
	"context"
	"errors"
	"testing"
	"time"
)

type linkEvent struct {
	name string
	up   bool
}

func TestLinksLinux(t *testing.T) {
	l := newLab(t)
	a := l.node("a", "198.18.0.1/24")
	linkUp := func() bool {
		t.Helper()
		var up bool
		a.do(func() {
			var err error
			if up, err = LinkUp("eth0"); err != nil {
				t.Fatal(err)
			}
		})
		return up
	}

	// The veth's carrier comes up a moment after the lab sets it up: start watching once
	// it has, so that the initial state reported is up (under load it was not yet).
	for deadline := time.Now().Add(5 * time.Second); !linkUp(); {
		if time.Now().After(deadline) {
			t.Fatal("eth0 has no carrier 5s after the lab set it up")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan linkEvent, 100)
	var watchErr error
	done := a.goDo(func() {
		watchErr = WatchLinks(ctx, func(name string, _ int, up bool) { events <- linkEvent{name, up} })
	})
	t.Cleanup(func() { cancel(); <-done })

	// waitEvent returns once eth0 reports want; other links' events are skipped.
	waitEvent := func(want bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if e.name == "eth0" {
					if e.up != want {
						t.Fatalf("eth0 event up=%v, want up=%v", e.up, want)
					}
					return
				}
			case <-done:
				t.Fatalf("WatchLinks returned early: %v", watchErr)
			case <-deadline:
				t.Fatalf("no eth0 event up=%v within 5s", want)
			}
		}
	}

	waitEvent(true) // the initial state
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"peer down (carrier lost)", func() { l.ip(l.bridge, "link", "set", "v-a", "down") }, false},
		{"peer up", func() { l.ip(l.bridge, "link", "set", "v-a", "up") }, true},
		{"admin down", func() { a.ip("link", "set", "eth0", "down") }, false},
		{"admin up", func() { a.ip("link", "set", "eth0", "up") }, true},
	}
	for _, s := range steps {
		s.do()
		waitEvent(s.want)
		if got := linkUp(); got != s.want {
			t.Errorf("%s: LinkUp(eth0) = %v, want %v", s.name, got, s.want)
		}
	}

	a.do(func() {
		if _, err := LinkUp("nope0"); err == nil {
			t.Error("LinkUp(nope0): no error")
		}
	})

	cancel()
	<-done
	if !errors.Is(watchErr, context.Canceled) {
		t.Errorf("WatchLinks after cancel = %v, want context.Canceled", watchErr)
	}
}
