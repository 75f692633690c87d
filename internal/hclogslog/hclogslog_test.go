package hclogslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestClosing: once a component is closing, its errors and those of the
// loggers derived from it are logged at debug level; other levels keep
// theirs.
func TestClosing(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")
	derived := l.Named("transport").With("peer", "n2")
	l.Error("before")
	l.Closing()
	derived.Error("after", "error", "transport shutdown")
	l.Warn("warning")
	out := buf.String()
	for _, want := range []string{
		`level=ERROR msg=before`,
		`level=DEBUG msg=after component=raft.transport peer=n2 error="transport shutdown"`,
		`level=WARN msg=warning`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
