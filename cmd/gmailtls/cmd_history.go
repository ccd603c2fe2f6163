package main

import (
	"context"
	"fmt"
)

func runHistory(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls history: not implemented yet")
	return exitUsage
}
