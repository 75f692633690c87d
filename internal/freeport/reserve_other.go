//go:build !unix

package freeport

// claim is empty here: there is no cross-process lock, and the bind check
// alone decides.
type claim struct{}

func reserve(int) (claim, bool) { return claim{}, true }

func (claim) release() {}

func sweep() {}
