package check

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/abacuskit/abacus/jepsen/internal/history"
	"github.com/anishathalye/porcupine"
)

// DefaultMaxStates bounds the set of states a model tracks at once (see
// Options.MaxStates).
const DefaultMaxStates = 4096

// spec is a nondeterministic sequential specification over states of type
// T: step appends to dst every state reachable from s by the operation
// (none if its output is impossible) and returns the extended slice.
// compare must be a total order that looks at every field of T, so that
// compare(a, b) == 0 exactly when a == b.
type spec[T comparable] struct {
	init     T
	step     func(s T, ev *Event, out *history.Output, dst []T) []T
	hash     func(T) uint64
	compare  func(a, b T) int
	describe func(T) string
}

// setModel is a porcupine model whose states are sets of T, kept as sorted,
// duplicate-free slices: the power-set construction of spec, like
// porcupine's NondeterministicModel.ToModel but with hashing instead of
// pairwise comparison, and with a bound on the set's size. A step whose
// result would exceed maxStates fails and sets exploded: a check that then
// comes out illegal has not proved anything, and Linearizable reports it as
// unknown.
func setModel[T comparable](sp spec[T], maxStates int, exploded *atomic.Bool) porcupine.Model {
	if maxStates <= 0 {
		maxStates = DefaultMaxStates
	}
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return []T{sp.init} },
		Step: func(state, input, output any) (bool, any) {
			states := state.([]T)
			ev := input.(*Event)
			out, _ := output.(*history.Output)
			next := make([]T, 0, len(states))
			for _, s := range states {
				next = sp.step(s, ev, out, next)
			}
			if len(next) == 0 {
				return false, state
			}
			slices.SortFunc(next, sp.compare)
			next = slices.CompactFunc(next, func(a, b T) bool { return sp.compare(a, b) == 0 })
			if len(next) > maxStates {
				exploded.Store(true)
				return false, state
			}
			return true, next
		},
		Equal: func(a, b any) bool { return slices.Equal(a.([]T), b.([]T)) },
		Hash: func(state any) uint64 {
			var h uint64
			for _, s := range state.([]T) {
				h = h*0x100000001b3 ^ sp.hash(s)
			}
			return h
		},
		DescribeOperation:         describeOperation,
		DescribeOperationMetadata: describeMetadata,
		DescribeState: func(state any) string {
			states := state.([]T)
			const show = 8
			parts := make([]string, 0, min(len(states), show))
			for i, s := range states {
				if i == show {
					parts = append(parts, fmt.Sprintf("… %d more", len(states)-show))
					break
				}
				parts = append(parts, sp.describe(s))
			}
			if len(parts) == 1 {
				return parts[0]
			}
			return "one of {" + strings.Join(parts, "; ") + "}"
		},
	}
}
