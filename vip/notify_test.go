package vip

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"lbd/internal/clock"
)

func TestNotifyCommands(t *testing.T) {
	n := Notify{Master: []string{"/bin/m", "a"}, Fault: []string{"/bin/f"}, Any: []string{"/bin/any", "x"}}
	tests := []struct {
		state string
		want  [][]string
	}{
		{"MASTER", [][]string{{"/bin/m", "a"}, {"/bin/any", "x", "INSTANCE", "web", "MASTER", "150"}}},
		{"BACKUP", [][]string{{"/bin/any", "x", "INSTANCE", "web", "BACKUP", "150"}}},
		{"FAULT", [][]string{{"/bin/f"}, {"/bin/any", "x", "INSTANCE", "web", "FAULT", "150"}}},
		{"STOP", [][]string{{"/bin/any", "x", "INSTANCE", "web", "STOP", "150"}}},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, notifyCommands(n, "web", tt.state, 150)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got := notifyCommands(Notify{}, "web", "MASTER", 1); got != nil {
		t.Errorf("no commands configured: %q", got)
	}
	// The generic command's argv is not aliased between calls.
	a := notifyCommands(n, "web", "MASTER", 1)
	b := notifyCommands(n, "web", "BACKUP", 2)
	if a[1][4] != "MASTER" || b[0][4] != "BACKUP" {
		t.Errorf("aliased argv: %q %q", a, b)
	}
}

// TestNotifierOrderAndTimeout: commands run one at a time, in order; one that hangs
// is killed at the timeout and the next runs.
func TestNotifierOrderAndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		var ran []string
		running := 0
		run := func(ctx context.Context, argv []string) error {
			running++
			defer func() { running-- }()
			if running > 1 {
				t.Errorf("%s runs concurrently with another command", argv[0])
			}
			ran = append(ran, argv[0])
			if argv[0] == "hang" {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		n := newNotifier(run, clk, slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Second)
		n.enqueue([]string{"first"}, []string{"hang"}, []string{"third"})
		synctest.Wait()
		if diff := cmp.Diff([]string{"first", "hang"}, ran); diff != "" {
			t.Errorf("before the timeout (-want +got):\n%s", diff)
		}
		advance(clk, 10*time.Second)
		n.enqueue([]string{"fourth"})
		if err := n.close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"first", "hang", "third", "fourth"}, ran); diff != "" {
			t.Errorf("after the timeout (-want +got):\n%s", diff)
		}
	})
}

func TestNotifierCloseTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		release := make(chan struct{})
		n := newNotifier(func(ctx context.Context, argv []string) error { <-release; return nil },
			clk, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour)
		n.enqueue([]string{"slow"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := n.close(ctx); err == nil {
			t.Errorf("close returned nil with a command still running and ctx done")
		}
		close(release)
		if err := n.close(context.Background()); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
}

func TestExecRunner(t *testing.T) {
	if err := ExecRunner(context.Background(), []string{"true"}); err != nil {
		t.Skipf("no true(1) here: %v", err)
	}
	if err := ExecRunner(context.Background(), []string{"false"}); err == nil {
		t.Errorf("false(1) succeeded")
	}
}

// TestExecRunnerKillsGroup: a script that starts a child in the background and hangs
// is killed with its child when ctx is done.
func TestExecRunnerKillsGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs a script for a few hundred milliseconds")
	}
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := ExecRunner(ctx, []string{"sh", "-c", `sleep 1000 & echo $! > "$1"; sleep 1000`, "sh", pidFile})
	if err == nil {
		t.Fatalf("a hanging script succeeded")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The child was killed, not reaped (its parent, the shell, is gone too, and init
	// reaps it): wait briefly for it to disappear.
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the script's child %d survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestNotifierCoalesces: transitions queued behind a running command collapse to the
// latest; a transition without commands still replaces a waiting one.
func TestNotifierCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		release := make(chan struct{})
		var ran []string
		run := func(ctx context.Context, argv []string) error {
			ran = append(ran, argv[0])
			if argv[0] == "a" {
				<-release
			}
			return nil
		}
		n := newNotifier(run, clk, slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Second)
		n.enqueue([]string{"a"})
		synctest.Wait()
		n.enqueue([]string{"b1"}, []string{"b2"})
		n.enqueue([]string{"c1"}, []string{"c2"})
		close(release)
		synctest.Wait()
		n.enqueue([]string{"d"})
		n.enqueue() // a state without commands
		if err := n.close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"a", "c1", "c2"}, ran); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// TestNotifierCloseBounded: close waits at most the timeout, then kills the running
// command and drops what waits.
func TestNotifierCloseBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		var ran []string
		running := 0
		run := func(ctx context.Context, argv []string) error {
			ran = append(ran, argv[0])
			running++
			defer func() { running-- }()
			<-ctx.Done()
			return ctx.Err()
		}
		n := newNotifier(run, clk, slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Second)
		n.enqueue([]string{"hang"})
		advance(clk, 2*time.Second)
		n.enqueue([]string{"hang2"})
		closed := make(chan error, 1)
		go func() { closed <- n.close(context.Background()) }()
		advance(clk, 8*time.Second) // hang's own timeout: hang2 starts
		advance(clk, 2*time.Second) // close's bound
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("close: %v", err)
			}
		default:
			t.Fatalf("close still waits one timeout after it was called (ran %q)", ran)
		}
		if running != 0 {
			t.Errorf("%d commands still run after close", running)
		}
	})
}
