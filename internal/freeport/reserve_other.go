//go:build !unix

package freeport

// reserve has no cross-process lock here: the bind check alone decides.
func reserve(int) bool { return true }
