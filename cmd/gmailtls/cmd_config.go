package main

import (
	"context"
	"fmt"
)

func runConfig(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls config: not implemented yet")
	return exitUsage
}
