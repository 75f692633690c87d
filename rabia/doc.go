// Package rabia is abacus's leaderless replication path: a second
// abacus.Replicator that orders proposals with Rabia's per-slot Weak-MVC
// consensus (package rabia/internal/wmvc) instead of a Raft leader.
//
// Select it with
//
//	cfg.Backend = rabia.Backend(rabia.Options{Secret: clusterSecret})
//
// on every member; the application keeps the same Node API.
package rabia
