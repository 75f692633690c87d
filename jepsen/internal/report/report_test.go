package report

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/abacuskit/abacus/jepsen/internal/check"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

func testInput() check.Input {
	op := func(i, p int, kind history.Kind, key string, call, ret int64, in history.Input, out history.Output) history.Op {
		return history.Op{Index: i, Process: p, Node: "n1", Kind: kind, Key: key, Call: call, Return: ret,
			Outcome: history.Ok, In: in, Out: out}
	}
	h := &history.History{
		Ops: []history.Op{
			op(0, 0, history.Add, "good", 0, 10, history.Input{Delta: 1}, history.Output{Value: 1}),
			op(1, 1, history.Get, "good", 20, 30, history.Input{}, history.Output{Value: 1, Exists: true}),
			op(2, 0, history.Add, "bad/key", 0, 10, history.Input{Delta: 1}, history.Output{Value: 1}),
			op(3, 1, history.Get, "bad/key", 20, 30, history.Input{}, history.Output{Value: 2, Exists: true}),
			op(4, 2, history.Acquire, "L", 0, 5, history.Input{Holder: "a"}, history.Output{Token: 1}),
		},
		Faults: []history.FaultWindow{{Start: 5, End: 25, Description: "partition n1 | n2 n3", Nodes: []string{"n1"}}},
	}
	return check.Input{
		History:    h,
		FinalReads: []check.FinalRead{{Node: "n1", Key: "good", Value: 1, Exists: true}},
		NodeStates: []check.NodeState{{Node: "n1", Hash: "x"}, {Node: "n2", Hash: "x"}},
	}
}

func TestWrite(t *testing.T) {
	ctx := context.Background()
	in := testInput()
	v := check.Run(ctx, in, check.Options{})
	if v.Status != check.StatusInvalid {
		t.Fatalf("test history judged %s", v.String())
	}
	dir := filepath.Join(t.TempDir(), "run", "1")
	line, err := Write(ctx, dir, in, v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if line != v.String() || !strings.HasPrefix(line, "INVALID:") {
		t.Fatalf("verdict line %q", line)
	}
	txt, err := os.ReadFile(filepath.Join(dir, VerdictFile))
	if err != nil || string(txt) != line+"\n" {
		t.Fatalf("verdict.txt = %q, %v", txt, err)
	}

	h, err := history.ReadFile(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, in.History) {
		t.Fatal("history.jsonl does not round-trip")
	}

	res, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != check.StatusInvalid || res.Verdict != line || len(res.Checks) != len(v.Checks) ||
		res.Summary.Ops != 5 || len(res.Faults) != 1 || len(res.FinalReads) != 1 || len(res.NodeStates) != 2 {
		t.Fatalf("results.json: %+v", res)
	}
	if len(res.Visualizations) != 3 {
		t.Fatalf("visualisations %+v", res.Visualizations)
	}
	statuses := map[string]check.Status{}
	for _, vis := range res.Visualizations {
		statuses[vis.Key] = vis.Status
		if strings.Contains(strings.TrimPrefix(vis.File, VisualizeDir+"/"), "/") {
			t.Fatalf("key escaped into the path: %q", vis.File)
		}
		html, err := os.ReadFile(filepath.Join(dir, vis.File))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(html), "partition n1 | n2 n3") {
			t.Fatalf("%s lacks the fault annotation", vis.File)
		}
	}
	if statuses["bad/key"] != check.StatusInvalid || statuses["good"] != check.StatusValid || statuses["L"] != check.StatusValid {
		t.Fatalf("statuses %v", statuses)
	}

	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, in) {
		t.Fatalf("Load = %+v, want %+v", loaded, in)
	}
	if again := check.Run(ctx, loaded, check.Options{}); again.String() != v.String() {
		t.Fatalf("re-judged %q, first %q", again.String(), v.String())
	}

	only := filepath.Join(t.TempDir(), "only")
	if _, err := Write(ctx, only, in, v, Options{OnlyFailures: true}); err != nil {
		t.Fatal(err)
	}
	res, err = ReadResults(only)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Visualizations) != 1 || res.Visualizations[0].Key != "bad/key" {
		t.Fatalf("OnlyFailures wrote %+v", res.Visualizations)
	}
	entries, err := os.ReadDir(filepath.Join(only, VisualizeDir))
	if err != nil || len(entries) != 1 {
		t.Fatalf("porcupine dir: %v, %v", entries, err)
	}
}

func TestWriteSkipsLongVisualizations(t *testing.T) {
	in := testInput()
	v := check.Run(context.Background(), in, check.Options{})
	dir := t.TempDir()
	if _, err := Write(context.Background(), dir, in, v, Options{MaxVisualizeOps: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, vis := range res.Visualizations {
		switch vis.Key {
		case "L": // one operation
			if vis.File == "" {
				t.Fatalf("short partition not visualised: %+v", vis)
			}
			files++
		default: // two or three operations
			if vis.File != "" || !strings.Contains(vis.Note, "limit 1") {
				t.Fatalf("long partition visualised: %+v", vis)
			}
		}
	}
	if files != 1 {
		t.Fatalf("%d files", files)
	}
}

func TestWriteCancelled(t *testing.T) {
	in := testInput()
	v := check.Run(context.Background(), in, check.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, t.TempDir(), in, v, Options{}); err == nil {
		t.Fatal("Write with a cancelled context succeeded")
	}
}

func TestSafeName(t *testing.T) {
	tests := map[string]string{
		"counter-1.a_b":          "counter-1.a_b",
		"../etc/passwd":          ".._etc_passwd",
		"ключ":                   "____",
		strings.Repeat("x", 100): strings.Repeat("x", maxKeyFileName),
	}
	for in, want := range tests {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, HistoryFile), []byte(`{"op":{"index":0,"kind":"nope","key":"c","outcome":"ok"}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, history.ErrInvalid) {
		t.Fatalf("bad history: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, HistoryFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ResultsFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("bad results.json accepted")
	}
}
