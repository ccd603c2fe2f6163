package main

import (
	"context"
	"fmt"
)

func runServe(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls serve: not implemented yet")
	return exitUsage
}
