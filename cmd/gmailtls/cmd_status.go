package main

import (
	"context"
	"fmt"
)

func runStatus(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls status: not implemented yet")
	return exitUsage
}
