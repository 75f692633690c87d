package abacus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/abacuskit/abacus"
)

// openExample opens a one-node cluster in a temporary directory.
func openExample() (*abacus.Node, func()) {
	dir, err := os.MkdirTemp("", "abacus-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg := abacus.DefaultConfig()
	cfg.ID, cfg.Dir, cfg.BindAddr = "n1", dir, "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := abacus.Open(cfg)
	if err != nil {
		log.Fatal(err)
	}
	return node, func() {
		node.Close()
		os.RemoveAll(dir)
	}
}

// Counting with checked arithmetic and a quota.
func Example() {
	node, done := openExample()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for i := 0; i < 3; i++ {
		if _, err := node.Add(ctx, "hits", 1); err != nil {
			log.Fatal(err)
		}
	}
	hits, _ := node.Get(ctx, "hits")
	fmt.Println("hits:", hits.Value)

	// A quota of 2: the third add is refused and changes nothing.
	for i := 0; i < 3; i++ {
		_, err := node.Add(ctx, "quota:alice", 1, abacus.WithMax(2))
		fmt.Println("reserve:", err == nil, errors.Is(err, abacus.ErrOutOfRange))
	}
	// Output:
	// hits: 3
	// reserve: true false
	// reserve: true false
	// reserve: false true
}

// A fenced lock: writes made under the lock carry its token and are
// refused once another holder has it.
func ExampleMutex() {
	node, done := openExample()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	m := node.NewMutex("nightly-report", "worker-7", abacus.MutexOptions{TTL: 10 * time.Second})
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := node.Set(ctx, "report:last-run", 20261121, m.Fence()); err != nil {
		log.Fatal(err)
	}
	stale := m.Token()
	if err := m.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	_, err := node.Set(ctx, "report:last-run", 0, abacus.WithFence("nightly-report", stale))
	fmt.Println("write with a released token refused:", errors.Is(err, abacus.ErrStaleToken))
	// Output:
	// write with a released token refused: true
}

// A fixed-window rate limiter is one call.
func ExampleWithExpiry() {
	node, done := openExample()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	allow := func(user string) bool {
		_, err := node.Add(ctx, "rate:"+user, 1, abacus.WithMax(2), abacus.WithExpiry(time.Minute))
		return err == nil
	}
	fmt.Println(allow("bob"), allow("bob"), allow("bob"))
	// Output:
	// true true false
}

// Instance-aware counters: each process's share leaves the total when
// its lease ends.
func ExampleInstance() {
	node, done := openExample()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	a, _ := node.NewInstance(ctx, 10*time.Second)
	b, _ := node.NewInstance(ctx, 10*time.Second)
	a.Add(ctx, "connections", 3)
	c, _ := b.Add(ctx, "connections", 2)
	fmt.Println("total", c.Value, "mine", c.Mine)
	a.Close(ctx) // or a stops renewing: the effect is the same
	c, _ = b.Get(ctx, "connections")
	fmt.Println("total", c.Value, "mine", c.Mine)
	// Output:
	// total 5 mine 2
	// total 2 mine 2
}
