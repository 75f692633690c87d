package hclogslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
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

// TestFormatValues: hclog's formatting values reach slog rendered, the way
// hclog prints them; hashicorp/raft logs its configuration with
// hclog.Fmt("%+v", servers).
func TestFormatValues(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), "raft")
	type server struct{ Suffrage, ID string }
	l.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", []server{{"Voter", "n1"}}))
	l.With("mode", hclog.Octal(8)).Info("numbers", "hex", hclog.Hex(255), "bin", hclog.Binary(5), "quoted", hclog.Quote("a\nb"), "bare", hclog.Format{42})
	out := buf.String()
	for _, want := range []string{
		`msg="initial configuration" component=raft index=1 servers="[{Suffrage:Voter ID:n1}]"`,
		`msg=numbers component=raft mode=010 hex=0xff bin=0b101 quoted="\"a\\nb\"" bare=42`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "%") {
		t.Errorf("a format verb reached the log:\n%s", out)
	}
}
