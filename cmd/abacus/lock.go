package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/abacuskit/abacus/client"
)

// lock runs a command while holding a lock: it acquires the lock (waiting
// up to --wait), runs CMD with ABACUS_LOCK_TOKEN set to the fencing token,
// renews the lease every third of --ttl, and releases the lock when CMD
// ends, exiting with CMD's status. If the lock is lost while CMD runs
// (the token went stale, or no renewal succeeded within the lease), CMD is
// sent SIGTERM (SIGKILL 10s later) and lock exits 1.
func (c *cli) lock(ctx context.Context, args []string) error {
	fs := c.flags("lock")
	ttl := fs.Duration("ttl", 10*time.Second, "lease time to live")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the lock")
	holder := fs.String("holder", "", "holder id (default host:pid)")
	pos, rest, dd, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !dd || len(rest) == 0 {
		return usagef("lock: want NAME [--ttl D] [--wait D] -- CMD [ARGS...]")
	}
	if *ttl < 300*time.Millisecond || *wait < 0 {
		return usagef("lock: --ttl must be at least 300ms and --wait not negative")
	}
	if err := c.connect(); err != nil {
		return err
	}
	name := pos[0]
	if *holder == "" {
		host, _ := os.Hostname()
		*holder = host + ":" + strconv.Itoa(os.Getpid())
	}

	sent := time.Now()
	actx, cancel := context.WithTimeout(ctx, *wait+c.timeout)
	acq, err := c.c.AcquireLock(actx, name, *holder, *ttl, *wait)
	cancel()
	if err != nil {
		var ae *client.Error
		if errors.Is(err, client.ErrLockHeld) && errors.As(err, &ae) {
			return &exitErr{exitConflict, fmt.Errorf("lock %s is held by %s", name, ae.Holder)}
		}
		return err
	}

	cmd := exec.Command(rest[0], rest[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr
	cmd.Env = append(os.Environ(),
		"ABACUS_LOCK_TOKEN="+strconv.FormatUint(acq.Token, 10),
		"ABACUS_LOCK_NAME="+name)
	if err := cmd.Start(); err != nil {
		c.release(name, acq.Token)
		return &exitErr{exitError, fmt.Errorf("starting %s: %w", rest[0], err)}
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	stop := make(chan struct{})
	lost := make(chan error, 1)
	go c.keepAlive(name, acq.Token, *ttl, sent, stop, lost)

	interrupted := ctx.Done()
	for {
		select {
		case <-exited:
			close(stop)
			c.release(name, acq.Token)
			return childExit(cmd.ProcessState)
		case <-interrupted:
			// Pass the interruption on and wait for CMD to end.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			interrupted = nil
		case err := <-lost:
			close(stop)
			fmt.Fprintf(c.stderr, "abacus: lock %s lost while %s ran: %v; stopping it\n", name, rest[0], err)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			return &exitErr{exitError, nil}
		}
	}
}

// keepAlive renews the lock every third of its TTL until stop closes, and
// reports on lost when the lock is gone or cannot be renewed in time. The
// lease is counted valid until the send time of the last successful
// renewal plus the TTL, less a tenth of it for clock drift.
func (c *cli) keepAlive(name string, token uint64, ttl time.Duration, sent time.Time, stop <-chan struct{}, lost chan<- error) {
	interval := ttl / 3
	validUntil := sent.Add(ttl - ttl/10)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		at := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), validUntil)
		_, err := c.c.KeepAliveLock(ctx, name, token)
		cancel()
		switch {
		case err == nil:
			validUntil = at.Add(ttl - ttl/10)
		case errors.Is(err, client.ErrStaleToken), errors.Is(err, client.ErrLeaseExpired):
			lost <- err
			return
		case time.Now().After(validUntil):
			lost <- fmt.Errorf("no renewal succeeded within the lease: %w", err)
			return
		}
	}
}

// release gives the lock up, reporting (not failing on) errors: a lock
// that already expired is released anyway.
func (c *cli) release(name string, token uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.c.ReleaseLock(ctx, name, token); err != nil {
		fmt.Fprintf(c.stderr, "abacus: releasing lock %s: %v\n", name, err)
	}
}

// childExit turns CMD's status into ours: its exit code, or 128+signal.
func childExit(ps *os.ProcessState) error {
	if ps == nil {
		return &exitErr{exitError, nil}
	}
	code := ps.ExitCode()
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code == 0 {
		return nil
	}
	return &exitErr{code, nil}
}
