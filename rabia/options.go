package rabia

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// Options tune the Rabia path. Zero fields take the defaults below; every
// replica of a cluster must use the same Secret.
type Options struct {
	// Secret keys the common coin (at least 16 bytes), identical on every
	// replica. It should be unknown to whoever can influence message
	// timing. Default: derived from the sorted member ids and addresses,
	// which is deterministic but public; set a real secret in production.
	Secret []byte
	// MaxBatch caps the proposals coalesced into one batch (one slot's
	// value). Default: Config.MaxEntryProposals (1024).
	MaxBatch int
	// Pipeline is how many slots a replica starts (its turns, see the
	// package documentation) without waiting for them to decide; slots
	// peers start are always joined. Default 2.
	Pipeline int
	// MaxOutstanding caps this replica's batches disseminated but not yet
	// applied; while it is reached, new proposals gather into the next
	// batch. Default 2*Pipeline.
	MaxOutstanding int
	// Settle is how long a batch of a silent replica waits in the queue,
	// counted from its arrival here, before the replica that takes over the
	// silent one's slots proposes it, so that late copies reach the queue
	// first and its shared order decides. Default 200µs.
	Settle time.Duration
	// TickInterval is how often the consensus engine re-sends messages that
	// may have been lost and status is exchanged. Default 10ms.
	TickInterval time.Duration
	// SnapshotEvery is how many applied slots trigger a snapshot and log
	// compaction. Default Config.SnapshotThreshold (8192).
	SnapshotEvery uint64
	// TrailingSlots is how many decided slots stay in the log after
	// compaction, for peers slightly behind. Default 1024.
	TrailingSlots uint64
}

// Defaults for zero Options fields.
const (
	DefaultPipeline      = 2
	DefaultSettle        = 200 * time.Microsecond
	DefaultTickInterval  = 10 * time.Millisecond
	DefaultTrailingSlots = 1024
)

func (o Options) withDefaults(cfg *abacus.Config) Options {
	if len(o.Secret) == 0 {
		h := sha256.New()
		h.Write([]byte("abacus-rabia-coin\x00"))
		ms := slices.Clone(cfg.Peers)
		slices.SortFunc(ms, func(a, b abacus.Member) int { return strings.Compare(a.ID, b.ID) })
		for _, m := range ms {
			fmt.Fprintf(h, "%s\x00%s\x00", m.ID, m.Addr)
		}
		o.Secret = h.Sum(nil)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = cfg.MaxEntryProposals
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	o.MaxBatch = min(o.MaxBatch, abacus.MaxEntryProposals)
	if o.Pipeline <= 0 {
		o.Pipeline = DefaultPipeline
	}
	if o.MaxOutstanding <= 0 {
		o.MaxOutstanding = 2 * o.Pipeline
	}
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.TickInterval <= 0 {
		o.TickInterval = DefaultTickInterval
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = cfg.SnapshotThreshold
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = 8192
	}
	if o.TrailingSlots == 0 {
		o.TrailingSlots = DefaultTrailingSlots
	}
	return o
}

func (o Options) validate() error {
	if len(o.Secret) < wmvc.MinSecretLen {
		return fmt.Errorf("%w: rabia: Secret shorter than %d bytes", abacus.ErrInvalidArgument, wmvc.MinSecretLen)
	}
	if o.Pipeline > wmvc.DefaultSlotWindow/4 {
		return fmt.Errorf("%w: rabia: Pipeline above %d", abacus.ErrInvalidArgument, wmvc.DefaultSlotWindow/4)
	}
	return nil
}

// Backend returns the leaderless Rabia replication path, for
// abacus.Config.Backend.
func Backend(opts Options) abacus.Backend { return backend{opts: opts} }

type backend struct{ opts Options }

// Name implements abacus.Backend.
func (backend) Name() string { return "rabia" }

// Open implements abacus.Backend.
func (b backend) Open(env *abacus.Env) (abacus.Replicator, error) { return open(env, b.opts) }
