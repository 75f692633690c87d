//go:build abacus_buggy_reads

package abacus

// buggyLocalReads is set by the abacus_buggy_reads build tag, for the
// fault-injection harness's proof that it catches a real bug: every node
// then serves linearizable reads from its own state, without the leader
// lease or a confirmation round, so a deposed or partitioned node returns
// stale values. Never build a release with this tag.
const buggyLocalReads = true
