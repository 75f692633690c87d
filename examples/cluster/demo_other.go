//go:build !unix

package main

import (
	"context"
	"errors"
	"io"
)

var errNeedsUnix = errors.New("the demo and -serve modes need a Unix system; run each node with `cluster node`")

type launcher struct {
	self    string
	out     io.Writer
	backend string
}

func (l *launcher) demo(context.Context, string) error            { return errNeedsUnix }
func (l *launcher) serve(context.Context, string, int, int) error { return errNeedsUnix }
