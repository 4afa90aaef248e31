package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"lbd/internal/clock"
)

// Notify scripts: on every transition the instance queues its commands (the specific
// one, then the generic one), and one goroutine per instance runs them in order, never
// two at once, each bounded by the timeout. A slow script delays the next script, never
// the state machine; a transition queued behind a slow script replaces one that still
// waits (see notifier).

// ExecRunner is the Runner of a real system: it runs argv without a shell and, when
// ctx is done, kills the command's whole process group, so a script that forked and
// hangs leaves nothing behind (keepalived kills a timed-out script's group too).
//
// Each command is the leader of a process group of its own (Setpgid) and gets SIGKILL
// when lbd dies (Pdeathsig). Linux sends the parent-death signal when the thread that
// forked exits, not the process, so the forking goroutine stays on its thread until
// the command has exited.
func ExecRunner(ctx context.Context, argv []string) error {
	return runCommand(ctx, argv, nil)
}

// runCommand runs argv as ExecRunner does, as cred when it is not nil.
func runCommand(ctx context.Context, argv []string, cred *syscall.Credential) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	cmd.Cancel = func() error {
		// The group's id is the leader's pid (Setpgid with Pgid 0).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second // stop waiting for output pipes a killed child left open
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}

// notifyCommands returns the commands to run when instance name enters state with
// priority: the state's own command, then the generic one with keepalived's arguments.
func notifyCommands(n Notify, name string, state string, priority int) [][]string {
	return notifyCommandsFor(n, "INSTANCE", name, state, priority)
}

// notifyCommandsFor is notifyCommands for an instance or (kind "GROUP") a sync group.
func notifyCommandsFor(n Notify, kind, name, state string, priority int) [][]string {
	var cmds [][]string
	var own []string
	switch state {
	case "MASTER":
		own = n.Master
	case "BACKUP":
		own = n.Backup
	case "FAULT":
		own = n.Fault
	case "STOP":
		own = n.Stop
	}
	if len(own) > 0 {
		cmds = append(cmds, own)
	}
	if len(n.Any) > 0 {
		cmds = append(cmds, append(append([]string(nil), n.Any...), kind, name, state, strconv.Itoa(priority)))
	}
	return cmds
}

// notifier runs the notify commands of one instance or sync group, one at a time.
//
// The queue holds at most one transition: a transition queued while another's
// commands run replaces any that is still waiting, so after a burst of changes the
// latest state's commands run, once, and the queue cannot grow. keepalived queues
// every transition's script and runs them all in order; lbd coalesces because the
// latest state is the one the scripts must leave the host in, and a flapping instance
// must not build a backlog that runs for minutes after the flapping stopped. A
// transition with no commands (a state without a configured script) still replaces
// the waiting one: a master script must not run after the instance became backup.
type notifier struct {
	run     Runner
	clock   clock.Clock
	log     *slog.Logger
	timeout atomic.Int64 // time.Duration; a sync group's changes on reload

	// mu guards pending and hasPending.
	mu         sync.Mutex
	pending    [][]string // the waiting transition's commands
	hasPending bool
	ready      chan struct{} // has a value when a transition may be waiting

	ctx    context.Context // cancelled when close stops waiting: kills what runs
	cancel context.CancelFunc
	done   chan struct{} // closed by close: run the waiting transition, then exit
	exited chan struct{}
	once   sync.Once
}

func newNotifier(run Runner, clk clock.Clock, log *slog.Logger, timeout time.Duration) *notifier {
	n := &notifier{run: run, clock: clk, log: log, ready: make(chan struct{}, 1),
		done: make(chan struct{}), exited: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.setTimeout(timeout)
	go n.loop()
	return n
}

// setTimeout sets the timeout of the commands that start from now on, and of close.
func (n *notifier) setTimeout(d time.Duration) { n.timeout.Store(int64(d)) }

// enqueue queues one transition's commands, to run in order after the commands that
// run now, in place of a transition still waiting.
func (n *notifier) enqueue(cmds ...[]string) {
	n.mu.Lock()
	if n.hasPending && len(n.pending) > 0 {
		n.log.Info("notify commands superseded by a later transition", "commands", n.pending)
	}
	n.pending, n.hasPending = cmds, true
	n.mu.Unlock()
	select {
	case n.ready <- struct{}{}:
	default:
	}
}

// take returns the waiting transition's commands.
func (n *notifier) take() ([][]string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cmds, ok := n.pending, n.hasPending
	n.pending, n.hasPending = nil, false
	return cmds, ok
}

// close lets the running command finish and the waiting transition run, for at most
// the timeout; then it kills what still runs (its process group) and drops what
// waits, so that stopping an instance never blocks a reload for longer. It returns an
// error only when ctx is done first.
func (n *notifier) close(ctx context.Context) error {
	n.once.Do(func() { close(n.done) })
	timeout := time.Duration(n.timeout.Load())
	t := n.clock.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-n.exited:
		return nil
	case <-t.C():
		n.log.Warn("notify commands still running at stop: killed", "timeout", timeout)
		n.cancel()
	case <-ctx.Done():
		n.cancel()
		return fmt.Errorf("waiting for notify scripts: %w", ctx.Err())
	}
	select {
	case <-n.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for notify scripts: %w", ctx.Err())
	}
}

func (n *notifier) loop() {
	defer close(n.exited)
	defer n.cancel()
	for {
		if cmds, ok := n.take(); ok {
			for _, argv := range cmds {
				if n.ctx.Err() != nil {
					return
				}
				n.runOne(argv)
			}
			continue
		}
		select {
		case <-n.ready:
		case <-n.done:
			if _, ok := n.peek(); !ok {
				return
			}
		case <-n.ctx.Done():
			return
		}
	}
}

// peek reports whether a transition waits.
func (n *notifier) peek() ([][]string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pending, n.hasPending
}

func (n *notifier) runOne(argv []string) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- n.run(ctx, argv) }()
	timeout := time.Duration(n.timeout.Load())
	t := n.clock.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case err = <-result:
	case <-t.C():
		cancel()
		<-result
		err = fmt.Errorf("killed after the timeout of %v", timeout)
	case <-n.ctx.Done():
		<-result
		err = errors.New("killed: the instance stopped")
	}
	if err != nil {
		n.log.Warn("notify script failed", "command", argv, "err", err)
	}
}

// mailbox is an unbounded queue that never blocks the sender; ready has a value when
// the queue may hold items.
type mailbox[T any] struct {
	// mu guards items.
	mu    sync.Mutex
	items []T
	ready chan struct{}
}

func (m *mailbox[T]) init() { m.ready = make(chan struct{}, 1) }

func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

func (m *mailbox[T]) take() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items
	m.items = nil
	return items
}
