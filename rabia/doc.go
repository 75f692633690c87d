// Package rabia is abacus's leaderless replication path: a second
// abacus.Replicator that orders proposals with Rabia's per-slot Weak-MVC
// consensus ("Rabia: Simplifying State-Machine Replication Through
// Randomization", Pan et al., SOSP 2021; the engine is
// rabia/internal/wmvc) instead of a Raft leader. Select it on every member:
//
//	cfg.Backend = rabia.Backend(rabia.Options{Secret: clusterSecret})
//
// and keep the same Node API: counters, batches, leases, locks and fencing,
// instance counters and watches run on the same state machine (abacus.FSM)
// with the same exactly-once table. Membership is fixed (Config.Peers,
// identical on every member); rabia does not implement abacus.Membership.
//
// # How a proposal travels
//
//  1. Batching. The replica a caller talks to queues the proposal; a
//     batcher coalesces what is queued (up to Options.MaxBatch proposals,
//     about 1 MiB) into a batch, stamps every proposal's Time (see "Time"),
//     encodes the batch with abacus.EncodeEntry and names it
//     (proposer time, proposer index, sequence).
//  2. Dissemination. The batch is sent to every replica and queued
//     locally. Every replica keeps a priority queue of batches ordered by
//     that name, so replicas that hold the same batches have the same head.
//  3. Slots. For each slot every replica proposes to the wmvc engine, and
//     Weak-MVC decides the batch a majority proposed, or null. Slot s is
//     started by replica s mod n (while that replica is silent, by the
//     next live one in index order) with its oldest own batch; with none,
//     it proposes null as soon as peers are active beyond the slot. The
//     other replicas join a slot when peers are active in it (the engine's
//     Joins) and propose what its starter proposed, unless they hold that
//     batch in another slot of theirs or it is decided (then their queue
//     head, or null when the queue is empty), so slots decide in their
//     first phase and never stall waiting for a replica. A slot revealed
//     only by activity on a later one waits up to 1 ms for its starter's
//     proposal before it is joined with null. Starting in turn keeps two
//     replicas from putting different batches into one slot at the same
//     moment, which under load turned about half the slots null. The
//     shared queue order decides which batches of a silent replica its
//     successor proposes, once they have waited Options.Settle.
//  4. After a decision. The decided batch leaves every queue for good
//     (its id is remembered, so a late copy is not proposed again). A
//     replica whose own proposal lost puts it back at the head of its
//     queue, unless that batch was decided in another slot.
//  5. Application. Decisions are appended to the log and synced, then
//     applied in slot order with index slot+1 (index 0 is never used; a
//     null slot only advances the index). The replica that made a batch
//     answers its callers from the results. Nothing is answered before its
//     decision is on disk, and a replica tells its peers of a decision it
//     reached by its own votes only once it is on disk (see Durability
//     and recovery).
//
// Propose returns abacus.ErrUnavailable when the proposal never left this
// replica (its context ended while it waited to be batched) and
// abacus.ErrIndeterminate once it was disseminated: from then on any
// replica may order it. The node retries with the same client id and
// sequence number; the exactly-once table answers a batch decided twice
// (in two slots) with the first result.
//
// Linearizable reads go through the log: the read-only command is proposed
// like a write (without a client session) and the state machine returns
// its result without changing state. Stale reads are local, as on Raft.
//
// # Pipelining, and why it is safe
//
// A replica keeps up to Options.Pipeline slots it started open at once
// and joins any number of slots its peers start. This is safe because:
//
//   - Slots are independent Weak-MVC instances. Agreement (every replica
//     that decides a slot decides the same value) and validity (a decided
//     value was proposed by a majority) hold per slot, whatever happens in
//     other slots: the engine keeps separate state per slot and every
//     message names its slot.
//   - The log is the sequence of slot decisions, and every replica applies
//     slot s only after every slot below s is decided and persisted. So
//     all replicas apply the same batches in the same order, and the
//     deterministic state machine reaches the same states. Pipelining
//     changes which batch lands in which slot, never what a slot decides
//     on different replicas.
//   - Real-time order is kept. A slot's value is fixed once any replica
//     decides it. When a write completes, its slot and every slot below it
//     have been decided, so their values are fixed; a batch made after
//     that (say, a read) cannot be any of them and lands in a later slot.
//     Hence a read or write submitted after another completed is ordered
//     after it, with any pipelining depth: linearizability.
//   - What pipelining can cost is duplication: a batch that lost slot s can
//     be proposed again while a later slot is deciding the same batch, and
//     be decided twice (a replica never proposes a batch in two of its own
//     open slots, but two replicas can). The second copy changes nothing (exactly-once
//     table; ticks and reads carry no session and only advance time, which
//     is deterministic), so it only wastes a slot; the decided-id memory
//     keeps it rare.
//   - The restart rule below covers every slot a replica proposed in,
//     pipelined or not: the persisted mark is the highest one.
//
// # Time
//
// There is no leader to keep state-machine time, so each proposal carries
// the time of the replica that batched it: the replica's estimate of
// state-machine time, which is the newest time it has learned advanced by
// the elapsed time its process's monotonic clock measured since (never
// the wall clock, abacus.Config.Clock). It learns the times it applies
// and the estimates its peers send with their status every TickInterval,
// and it never moves back, so a slot that took long to decide adds no
// lag: every replica's estimate trails the most advanced one by about a
// message delay at most. A replica that has just opened has not learned
// the cluster's time (its copy stood still while it was down), so it
// stamps nothing before a peer's status arrives. This matters because a
// lease granted on a lagging stamp is cut short, by the lag, by the next
// stamp that does not lag. State-machine time never runs backwards (the
// FSM takes the larger of its time and a proposal's). Expiry needs a
// command whose time is past the deadline: every replica, when
// FSM.NextDeadline is due by its estimate, proposes an abacus.OpTick (at
// most one in flight per replica); duplicates are harmless. A stopped
// cluster's time stands still: remaining lease time survives a restart,
// as on Raft.
//
// Clock assumption: the members' clocks measure elapsed time at nearly
// the same rate (within Config.DriftMargin over a lease); their wall times
// need not agree, since a stamp never exceeds the newest time the
// proposer learned plus what it measured since. A node whose clock runs fast (or
// jumps, as an adjusted monotonic clock might) advances state-machine time
// early by the excess, so leases and lock-delays can end up to that much
// early, before their holders' conservative view of them ends. Locks stay
// safe then through fencing: a lock whose lease ended early passes to the
// next holder with a strictly larger token, and every write that carries
// the old holder's fence (abacus.WithFence, Mutex.Fence) is refused with
// abacus.ErrStaleToken in log order, so a holder that still believes it
// holds the lock cannot change fenced state. Effects outside abacus are
// protected only where they check the token. Fencing covers one more case
// the same way: if the replicas that kept time are all cut off while the
// others restart, those carry on from the time they stopped at, and when
// the cut-off replicas return, their stamps move time ahead by the
// difference.
//
// # Durability and recovery
//
// Storage lives in Config.Dir/rabia: an append-only log of decided slots
// (each record with a CRC-32C; a torn tail is cut off on open), synced
// before any decision is applied; a file with the proposal mark; and the
// latest snapshot (abacus.FSM.Snapshot().WriteTo plus the number of slots
// it covers). Every Options.SnapshotEvery applied slots the replica
// snapshots and compacts its log, keeping Options.TrailingSlots slots for
// peers slightly behind.
//
// A replica must never vote twice in a slot with a different state, and it
// keeps no votes on disk. So before proposing past its persisted mark it
// raises the mark (reserving 64 slots ahead, one sync per 64 slots), and
// after a restart it only learns, never votes in, the slots from its first
// unapplied one up to the mark. Close first lets the slots it voted in
// decide (up to 2 s), then records the exact highest slot it proposed in,
// and a replica idle for 50 ms (no open slot) does the same; so a graceful
// restart, even of the whole cluster, and a crash of the whole cluster
// while it is quiet leave only decided slots to learn. A crash of one
// replica costs nothing (the others decide the slots it must learn). A
// crash of a majority at once while slots are in flight may leave slots
// that a majority voted in and nobody decided, which those replicas may
// only learn and the others cannot decide alone. Recovery (recovery.go)
// ends them: once every replica is back and has promised, durably, never
// to vote in them again, and none had decided them, they are decided
// null and their batches proposed again. Keeping no votes on disk costs
// the cluster a wait for all its members in that case only, instead of
// syncs on every round of every slot. Null is right there only if no
// decision of those slots can surface later, so a replica announces a
// decision it reached by its votes only after syncing it: a decision lost
// in a crash was told to nobody.
//
// Catching up: replicas exchange their applied slot every
// Options.TickInterval. A replica far behind a peer (64 slots) or making
// no progress while a peer is ahead fetches decided slots from that peer
// over the node's RPC connections, or its snapshot in 1 MiB chunks when the
// peer has compacted them (a snapshot that is damaged, or whose state is
// not at the index its header names, is refused and fetched again, the
// replica's state left as it was); a restarted replica and one cut off by
// a partition rejoin this way. Messages for slots a replica has compacted are
// answered from its log.
//
// # Transport
//
// Protocol messages, batches and status travel on the node's peer port as
// fire-and-forget messages (transport.Mux.Messenger, KindRabia); catch-up,
// time and recovery requests as RPCs (KindRPC); mutual TLS, when
// configured, covers both.
// Lost messages are repeated by the engine on every TickInterval. Every
// length a peer sends is bounded before allocation.
//
// # Defaults
//
// MaxBatch: Config.MaxEntryProposals (1024). Pipeline: 2 slots (measured
// best on three nodes: deeper pipelines made smaller batches and more
// null slots).
// MaxOutstanding: 2×Pipeline batches of this replica disseminated but not
// applied (while they are out, proposals gather into the next batch, as
// on Raft with MaxInflightEntries). Settle: 200 µs. TickInterval: 10 ms.
// SnapshotEvery: Config.SnapshotThreshold (8192). TrailingSlots: 1024.
// Secret: derived from the member list; set a real one in production.
package rabia
