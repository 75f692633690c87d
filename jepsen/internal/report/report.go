// Package report writes the outcome of a fault-injection run to a directory:
//
//	history.jsonl             the history (history.Encoder format)
//	results.json              the verdict, every checker's result, the summary,
//	                          the fault windows and the final reads and state hashes
//	verdict.txt               the one-line verdict (Verdict.String) and a newline
//	porcupine/*.html          porcupine's visualisation of each checked partition,
//	                          with the fault windows as annotations
//
// Usage, after the run:
//
//	v := check.Run(ctx, in, check.Options{})
//	line, err := report.Write(ctx, "runs/2026-11-21T20-45", in, v, report.Options{})
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/abacuskit/abacus/jepsen/internal/check"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// File names inside a run directory.
const (
	HistoryFile    = "history.jsonl"
	ResultsFile    = "results.json"
	VerdictFile    = "verdict.txt"
	VisualizeDir   = "porcupine"
	maxKeyFileName = 64
)

// DefaultMaxVisualizeOps is the default Options.MaxVisualizeOps.
const DefaultMaxVisualizeOps = 10000

// Options tune Write. The zero value writes every visualisation of up to
// DefaultMaxVisualizeOps operations.
type Options struct {
	// OnlyFailures limits visualisations to partitions that are invalid or
	// unknown (visualisations of long valid histories can be large).
	OnlyFailures bool
	// MaxVisualizeOps skips the visualisation of partitions with more
	// operations than this: porcupine's page replays every partial
	// linearization, which for a long invalid history costs memory
	// quadratic in its length. Default DefaultMaxVisualizeOps; negative
	// means no limit.
	MaxVisualizeOps int
}

// Visualization names the visualisation of one partition.
type Visualization struct {
	Model  string       `json:"model"`
	Key    string       `json:"key"`
	Status check.Status `json:"status"`
	// File is relative to the run directory; empty when the partition was
	// too long to visualise (see Note).
	File string `json:"file,omitempty"`
	Note string `json:"note,omitempty"`
}

// Results is the content of results.json.
type Results struct {
	// Verdict is the one-line verdict; Status the overall status.
	Verdict string       `json:"verdict"`
	Status  check.Status `json:"status"`
	// Checks are the checkers' results; Summary counts the history.
	Checks  []check.Result `json:"checks"`
	Summary check.Summary  `json:"summary"`
	// ElapsedNs is the total checking time.
	ElapsedNs int64 `json:"elapsed_ns"`
	// Faults are the run's fault windows.
	Faults []history.FaultWindow `json:"faults,omitempty"`
	// FinalReads and NodeStates are the post-heal observations checked.
	FinalReads []check.FinalRead `json:"final_reads,omitempty"`
	NodeStates []check.NodeState `json:"node_states,omitempty"`
	// Initial are the counters' values before the run.
	Initial map[string]int64 `json:"initial,omitempty"`
	// Visualizations lists the porcupine HTML files written.
	Visualizations []Visualization `json:"visualizations,omitempty"`
}

// Write creates dir (and parents) and writes the run's files into it. It
// returns the one-line verdict. A visualisation that cannot be rendered is
// an error; files written before it remain.
func Write(ctx context.Context, dir string, in check.Input, v *check.Verdict, opts Options) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	h := in.History
	if h == nil {
		h = &history.History{}
	}
	if err := history.WriteFile(filepath.Join(dir, HistoryFile), h); err != nil {
		return "", fmt.Errorf("report: writing history: %w", err)
	}
	res := Results{
		Verdict: v.String(), Status: v.Status, Checks: v.Checks, Summary: v.Summary,
		ElapsedNs: v.Elapsed.Nanoseconds(), Faults: h.Faults,
		FinalReads: in.FinalReads, NodeStates: in.NodeStates, Initial: in.Initial,
	}
	if lin := v.Check(check.NameLinearizable); lin != nil {
		if err := os.MkdirAll(filepath.Join(dir, VisualizeDir), 0o755); err != nil {
			return "", err
		}
		for i, p := range lin.Partitions {
			if err := ctx.Err(); err != nil {
				return "", context.Cause(ctx)
			}
			if p.Status == check.StatusSkipped || (opts.OnlyFailures && p.Status == check.StatusValid) {
				continue
			}
			if limit := opts.maxOps(); limit >= 0 && p.Ops > limit {
				res.Visualizations = append(res.Visualizations, Visualization{Model: p.Model, Key: p.Key, Status: p.Status,
					Note: fmt.Sprintf("not visualised: %d operations, limit %d", p.Ops, limit)})
				continue
			}
			name := filepath.Join(VisualizeDir, fmt.Sprintf("%s-%03d-%s.html", p.Model, i, safeName(p.Key)))
			if err := writeVisualization(filepath.Join(dir, name), p, h.Faults); err != nil {
				return "", fmt.Errorf("report: visualising %s %q: %w", p.Model, p.Key, err)
			}
			res.Visualizations = append(res.Visualizations, Visualization{Model: p.Model, Key: p.Key, Status: p.Status, File: name})
		}
	}
	data, err := json.MarshalIndent(&res, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ResultsFile), append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	line := v.String()
	if err := os.WriteFile(filepath.Join(dir, VerdictFile), []byte(line+"\n"), 0o644); err != nil {
		return "", err
	}
	return line, nil
}

func (o Options) maxOps() int {
	switch {
	case o.MaxVisualizeOps == 0:
		return DefaultMaxVisualizeOps
	case o.MaxVisualizeOps < 0:
		return -1
	}
	return o.MaxVisualizeOps
}

// ReadResults reads a run directory's results.json.
func ReadResults(dir string) (*Results, error) {
	data, err := os.ReadFile(filepath.Join(dir, ResultsFile))
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("report: %s: %w", ResultsFile, err)
	}
	return &r, nil
}

// Load reads a run directory written by Write back into the checkers'
// input (history, final reads, node states, initial values), so that a run
// can be judged again:
//
//	in, err := report.Load(dir)
//	v := check.Run(ctx, in, opts)
//	_, err = report.Write(ctx, dir, in, v, report.Options{})
func Load(dir string) (check.Input, error) {
	h, err := history.ReadFile(filepath.Join(dir, HistoryFile))
	if err != nil {
		return check.Input{}, fmt.Errorf("report: %s: %w", HistoryFile, err)
	}
	res, err := ReadResults(dir)
	if err != nil {
		return check.Input{}, err
	}
	return check.Input{History: h, FinalReads: res.FinalReads, NodeStates: res.NodeStates, Initial: res.Initial}, nil
}

func writeVisualization(path string, p *check.Partition, faults []history.FaultWindow) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return p.Visualize(f, faults)
}

// safeName turns a counter or lock name into a file-name fragment.
func safeName(key string) string {
	var b strings.Builder
	for _, r := range key {
		if b.Len() >= maxKeyFileName {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
