package dataplane

import "testing"

// FuzzAgentReply feeds parseAgentReply arbitrary agent lines. A reply it accepts must
// hold values in range and read back the same from its String form (what lbctl and the
// logs show), so the parser and the printer agree on every word.
func FuzzAgentReply(f *testing.F) {
	for _, s := range []string{
		"75%\n", "up 50%\r\n", "drain", "maint\nignored", "ready,up,100%", "down\t0%",
		"fail # the disk is full", "maxconn:30 up", "stopped", "failed", "MAINT", "",
		"#only a comment", "101%", "-1%", "%", "up 50% 60%", "bogus", "maxconn:", "0x10%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseAgentReply(line)
		if err != nil {
			return
		}
		if r.pct < -1 || r.pct > 100 || r.mode < -1 || r.mode > agentMaint ||
			r.health < agentHealthUnset || r.health > agentHealthDown {
			t.Fatalf("parseAgentReply(%q) = %+v: out of range", line, r)
		}
		s := r.String()
		if s == "" {
			return // only maxconn:N, which lbd accepts and does not use
		}
		back, err := parseAgentReply(s)
		if err != nil || back != r {
			t.Fatalf("parseAgentReply(%q) = %+v, printed %q, which reads back as %+v, %v", line, r, s, back, err)
		}
	})
}
