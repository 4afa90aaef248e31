package cluster

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLogAdapters(t *testing.T) {
	log, logs := newTestLog(t)
	h := newHCLog(log, "raft").Named("net").With("peer", "lb2")
	h.Warn("failed to heartbeat", "servers", hclog.Fmt("%d of %d", 1, 2))
	h.Debug("not shown at info")
	if !logs.contains("WARN failed to heartbeat", "component=raft.net", "peer=lb2", "servers=1 of 2") {
		t.Errorf("hclog adapter: %q", logs.lines)
	}
	if !h.IsInfo() || h.IsDebug() || h.GetLevel() != hclog.Info {
		t.Errorf("levels: info %v debug %v level %v", h.IsInfo(), h.IsDebug(), h.GetLevel())
	}
	std := newStdLog(log, "memberlist")
	std.Printf("[ERR] memberlist: Failed to send ping: boom")
	std.Printf("[DEBUG] memberlist: Stream connection")
	if !logs.contains("ERROR Failed to send ping: boom", "component=memberlist") || logs.contains("Stream connection") {
		t.Errorf("memberlist adapter: %q", logs.lines)
	}
}
