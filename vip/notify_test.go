package vip

import (
	"context"
	"io"
	"log/slog"
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
