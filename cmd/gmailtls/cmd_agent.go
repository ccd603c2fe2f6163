package main

import (
	"context"
	"fmt"
)

func runAgent(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls agent: not implemented yet")
	return exitUsage
}
