// Package hclogslog adapts hashicorp's hclog.Logger interface to log/slog,
// so hashicorp/raft logs through the application's slog.Logger.
package hclogslog

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Logger implements hclog.Logger on top of a *slog.Logger.
type Logger struct {
	l       *slog.Logger // base with the component and implied args
	base    *slog.Logger // the application's logger
	name    string
	implied []any
	closing *atomic.Bool // shared by every logger derived from one New
}

var _ hclog.Logger = (*Logger)(nil)

// New returns an hclog.Logger writing to l.
func New(l *slog.Logger, name string) *Logger {
	return &Logger{l: l.With("component", name), base: l, name: name, closing: new(atomic.Bool)}
}

// Closing marks the component as shutting itself down: from now on this
// logger and every logger derived from it log errors at debug level.
// hashicorp/raft reports the connections and transport it is closing as
// errors ("failed to decode incoming command: transport shutdown"), which
// are expected then.
func (g *Logger) Closing() { g.closing.Store(true) }

// hclog's Trace has no slog counterpart; it maps below Debug.
const levelTrace = slog.LevelDebug - 4

func toSlog(level hclog.Level) slog.Level {
	switch level {
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

func (g *Logger) enabled(level slog.Level) bool {
	return g.l.Enabled(context.Background(), level)
}

// Log emits msg at level.
func (g *Logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level == hclog.NoLevel {
		return
	}
	l := toSlog(level)
	if l >= slog.LevelError && g.closing.Load() {
		l = slog.LevelDebug
	}
	g.l.Log(context.Background(), l, msg, render(args)...)
}

// render returns args with hclog's formatting values rendered as hclog
// renders them: a Format (hclog.Fmt) as its Printf result, Hex, Octal and
// Binary as prefixed numbers, Quote as a Go-quoted string. slog would
// print them as plain values ("[%+v [...]]" for a Format).
func render(args []any) []any {
	var out []any
	for i, a := range args {
		var v any
		switch a := a.(type) {
		case hclog.Format:
			v = renderFormat(a)
		case hclog.Hex:
			v = "0x" + strconv.FormatUint(uint64(a), 16)
		case hclog.Octal:
			v = "0" + strconv.FormatUint(uint64(a), 8)
		case hclog.Binary:
			v = "0b" + strconv.FormatUint(uint64(a), 2)
		case hclog.Quote:
			v = strconv.Quote(string(a))
		default:
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}

func renderFormat(f hclog.Format) string {
	if len(f) == 0 {
		return ""
	}
	if format, ok := f[0].(string); ok {
		return fmt.Sprintf(format, f[1:]...)
	}
	return fmt.Sprint(f...)
}

// Trace emits at trace level.
func (g *Logger) Trace(msg string, args ...any) { g.Log(hclog.Trace, msg, args...) }

// Debug emits at debug level.
func (g *Logger) Debug(msg string, args ...any) { g.Log(hclog.Debug, msg, args...) }

// Info emits at info level.
func (g *Logger) Info(msg string, args ...any) { g.Log(hclog.Info, msg, args...) }

// Warn emits at warn level.
func (g *Logger) Warn(msg string, args ...any) { g.Log(hclog.Warn, msg, args...) }

// Error emits at error level.
func (g *Logger) Error(msg string, args ...any) { g.Log(hclog.Error, msg, args...) }

// IsTrace reports whether trace logs are emitted.
func (g *Logger) IsTrace() bool { return g.enabled(levelTrace) }

// IsDebug reports whether debug logs are emitted.
func (g *Logger) IsDebug() bool { return g.enabled(slog.LevelDebug) }

// IsInfo reports whether info logs are emitted.
func (g *Logger) IsInfo() bool { return g.enabled(slog.LevelInfo) }

// IsWarn reports whether warn logs are emitted.
func (g *Logger) IsWarn() bool { return g.enabled(slog.LevelWarn) }

// IsError reports whether error logs are emitted.
func (g *Logger) IsError() bool { return g.enabled(slog.LevelError) }

// ImpliedArgs returns the arguments added with With.
func (g *Logger) ImpliedArgs() []any { return g.implied }

// With returns a logger that adds args to every record.
func (g *Logger) With(args ...any) hclog.Logger {
	args = render(args)
	return &Logger{l: g.l.With(args...), base: g.base, name: g.name, implied: append(append([]any{}, g.implied...), args...), closing: g.closing}
}

// Name returns the logger's name.
func (g *Logger) Name() string { return g.name }

// Named returns a logger whose name has name appended.
func (g *Logger) Named(name string) hclog.Logger {
	if g.name != "" {
		name = g.name + "." + name
	}
	return g.ResetNamed(name)
}

// ResetNamed returns a logger named name.
func (g *Logger) ResetNamed(name string) hclog.Logger {
	return &Logger{l: g.base.With("component", name).With(g.implied...), base: g.base, name: name, implied: g.implied, closing: g.closing}
}

// SetLevel does nothing: the slog handler decides levels.
func (g *Logger) SetLevel(hclog.Level) {}

// GetLevel reports the most verbose level the slog handler emits.
func (g *Logger) GetLevel() hclog.Level {
	switch {
	case g.IsTrace():
		return hclog.Trace
	case g.IsDebug():
		return hclog.Debug
	case g.IsInfo():
		return hclog.Info
	case g.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

// StandardLogger returns a *log.Logger writing through this logger.
func (g *Logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(g.StandardWriter(opts), "", 0)
}

// StandardWriter returns an io.Writer whose lines are logged at info.
func (g *Logger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return writer{g} }

type writer struct{ g *Logger }

func (w writer) Write(p []byte) (int, error) {
	w.g.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
