package main

import (
	"context"
	"fmt"
)

func runProbe(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls probe: not implemented yet")
	return exitUsage
}
