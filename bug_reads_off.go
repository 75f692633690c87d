//go:build !abacus_buggy_reads

package abacus

// buggyLocalReads is false in every normal build; the abacus_buggy_reads
// build tag (bug_reads.go) turns on a deliberate stale-read bug for the
// fault-injection harness's tests.
const buggyLocalReads = false
