package main

import (
	"context"
	"fmt"
)

func runConsole(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls console: not implemented yet")
	return exitUsage
}
