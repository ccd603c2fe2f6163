package main

import (
	"context"
	"fmt"
)

func runBackup(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls backup: not implemented yet")
	return exitUsage
}
