package node

import (
	"context"
	"testing"
)

// checkLog is a checkSink that records what it is told.
type checkLog map[string][]float64

func (c checkLog) SetCheck(name string, level float64) { c[name] = append(c[name], level) }

// TestReportChecksWhileStopping: the stop cancels the health loop's context while a
// probe of the "dataplane" check may be under way. A probe cut short by the stop says
// nothing about the dataplane and must not be reported as a failure: that put the
// instances tracking it in FAULT just before the priority-0 handover ("fault … [check
// dataplane failed]" then STOP within 1ms of SIGTERM), turning the graceful stop into a
// plain release.
func TestReportChecksWhileStopping(t *testing.T) {
	n := nodeWithTCPFrontend(t)

	running := checkLog{}
	n.reportChecks(context.Background(), running)
	if got := running[CheckDataplane]; len(got) != 1 || got[0] != 1 {
		t.Fatalf("dataplane check while running = %v, want [1]", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the stop began during the probes
	stopping := checkLog{}
	n.reportChecks(ctx, stopping)
	if got, ok := stopping[CheckDataplane]; ok {
		t.Errorf("dataplane check reported as %v by probes the stop cut short; want no report", got)
	}
}
