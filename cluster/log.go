package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// The agent logs through one *slog.Logger. raft and raft-wal want an hclog.Logger and
// memberlist a *log.Logger; the adapters below turn their output into slog records
// with a "component" attribute, so the node's log has one format.

// levelTrace is below slog.LevelDebug, for hclog's Trace.
const levelTrace = slog.LevelDebug - 4

// hclogAdapter is an hclog.Logger that writes to a *slog.Logger.
type hclogAdapter struct {
	base *slog.Logger // without this adapter's attributes
	log  *slog.Logger // base with component and implied args
	name string
	args []any
}

func newHCLog(l *slog.Logger, name string) hclog.Logger {
	return (&hclogAdapter{base: l, name: name}).build()
}

func (h *hclogAdapter) build() *hclogAdapter {
	h.log = h.base.With(append([]any{"component", h.name}, h.args...)...)
	return h
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 { // hclog.Fmt("%+v", x)
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	h.log.Log(context.Background(), slogLevel(level), msg, args...)
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogAdapter) enabled(l slog.Level) bool {
	return h.log.Enabled(context.Background(), l)
}

func (h *hclogAdapter) IsTrace() bool { return h.enabled(levelTrace) }
func (h *hclogAdapter) IsDebug() bool { return h.enabled(slog.LevelDebug) }
func (h *hclogAdapter) IsInfo() bool  { return h.enabled(slog.LevelInfo) }
func (h *hclogAdapter) IsWarn() bool  { return h.enabled(slog.LevelWarn) }
func (h *hclogAdapter) IsError() bool { return h.enabled(slog.LevelError) }

func (h *hclogAdapter) ImpliedArgs() []any { return h.args }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	return (&hclogAdapter{base: h.base, name: h.name, args: append(append([]any(nil), h.args...), args...)}).build()
}

func (h *hclogAdapter) Name() string { return h.name }

func (h *hclogAdapter) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return (&hclogAdapter{base: h.base, name: name, args: h.args}).build()
}

// SetLevel does nothing: the slog handler decides what is written.
func (h *hclogAdapter) SetLevel(hclog.Level) {}

func (h *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if h.enabled(slogLevel(l)) {
			return l
		}
	}
	return hclog.Error
}

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &logWriter{log: h.log}
}

// newStdLog returns a *log.Logger for memberlist whose lines become slog records.
func newStdLog(l *slog.Logger, component string) *log.Logger {
	return log.New(&logWriter{log: l.With("component", component), trim: component + ": "}, "", 0)
}

// logWriter turns lines of the form "[LEVEL] component: message" into slog records.
type logWriter struct {
	log  *slog.Logger
	trim string // prefix removed from the message
}

func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		level, msg := parseLogLine(string(line))
		msg = strings.TrimPrefix(msg, w.trim)
		w.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// parseLogLine splits "[WARN] memberlist: text" into its level and the rest; a line
// without a known level is logged at info.
func parseLogLine(line string) (slog.Level, string) {
	levels := []struct {
		tag   string
		level slog.Level
	}{
		{"[TRACE]", levelTrace},
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
	}
	for _, l := range levels {
		if rest, ok := strings.CutPrefix(line, l.tag); ok {
			return l.level, strings.TrimSpace(rest)
		}
	}
	return slog.LevelInfo, strings.TrimSpace(line)
}
