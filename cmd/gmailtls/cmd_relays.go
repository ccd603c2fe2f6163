package main

import (
	"context"
	"fmt"
)

func runRelays(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "gmailtls relays: not implemented yet")
	return exitUsage
}
