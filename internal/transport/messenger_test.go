package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// inbox collects received messages.
type inbox struct {
	mu   sync.Mutex
	msgs []string
	from []string
}

func (in *inbox) handle(from string, msg []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, string(msg))
	in.from = append(in.from, from)
	in.mu.Unlock()
}

func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

func (in *inbox) snapshot() ([]string, []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.msgs...), append([]string(nil), in.from...)
}

func (in *inbox) has(msg string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range in.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

func newMessenger(t testing.TB, m *Mux, cfg MessengerConfig) (*Messenger, *inbox) {
	in := &inbox{}
	ms := m.Messenger(in.handle, cfg)
	t.Cleanup(func() { _ = ms.Close() })
	return ms, in
}

func TestMessengerOrderedDelivery(t *testing.T) {
	a := newTestMux(t, "a", Config{})
	b := newTestMux(t, "b", Config{})
	msA, _ := newMessenger(t, a, MessengerConfig{QueueLen: 10000})
	_, inB := newMessenger(t, b, MessengerConfig{})
	const n = 2000
	for i := range n {
		if err := msA.Send(b.Addr(), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all messages", func() bool { return inB.len() == n })
	msgs, from := inB.snapshot()
	for i := range n {
		if msgs[i] != strconv.Itoa(i) || from[i] != "a" {
			t.Fatalf("message %d = %q from %q", i, msgs[i], from[i])
		}
	}
	if msA.Dropped() != 0 {
		t.Fatalf("Dropped = %d", msA.Dropped())
	}
}

func TestMessengerQueueDropsOldest(t *testing.T) {
	a := newTestMux(t, "a", Config{Faults: true})
	b := newTestMux(t, "b", Config{})
	if err := a.Faults().Partition("b"); err != nil {
		t.Fatal(err)
	}
	msA, _ := newMessenger(t, a, MessengerConfig{QueueLen: 4, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	_, inB := newMessenger(t, b, MessengerConfig{})
	for i := range 10 {
		if err := msA.Send(b.Addr(), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := msA.Dropped(); got != 6 {
		t.Fatalf("Dropped = %d, want 6", got)
	}
	if err := a.Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "queued messages after heal", func() bool { return inB.len() == 4 })
	msgs, _ := inB.snapshot()
	if fmt.Sprint(msgs) != "[6 7 8 9]" {
		t.Fatalf("received %v, want the 4 newest in order", msgs)
	}
}

func TestMessengerReconnects(t *testing.T) {
	a := newTestMux(t, "a", Config{Faults: true})
	b := newTestMux(t, "b", Config{})
	msA, _ := newMessenger(t, a, MessengerConfig{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	_, inB := newMessenger(t, b, MessengerConfig{})
	probe := func(tag string) {
		t.Helper()
		i := 0
		waitFor(t, "delivery of "+tag, func() bool {
			i++
			_ = msA.Send(b.Addr(), fmt.Appendf(nil, "%s-%d", tag, i))
			return inB.has(fmt.Sprintf("%s-%d", tag, i-1)) || inB.has(fmt.Sprintf("%s-%d", tag, i))
		})
	}
	probe("before")
	// Cut the connection: the sender reconnects by itself.
	if err := a.Faults().Partition("b"); err != nil {
		t.Fatal(err)
	}
	if err := a.Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	probe("after")
}

func TestMessengerErrorsAndBadPeers(t *testing.T) {
	a := newTestMux(t, "a", Config{MaxFrame: 100})
	b := newTestMux(t, "b", Config{MaxFrame: 100})
	msA, _ := newMessenger(t, a, MessengerConfig{})
	_, inB := newMessenger(t, b, MessengerConfig{})
	if err := msA.Send(b.Addr(), make([]byte, 101)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized Send = %v", err)
	}
	// A peer announcing an oversized message is cut off.
	c, err := a.Dial(ctxT(t), b.Addr(), KindRabia)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(binary.BigEndian.AppendUint32(nil, 101)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if err := msA.Send(b.Addr(), []byte("fine")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "good message", func() bool { return inB.has("fine") })
	if err := msA.Close(); err != nil {
		t.Fatal(err)
	}
	if err := msA.Send(b.Addr(), []byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
}
