package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/gmailtls/gmailtls/commands"
)

const relaysUsage = `usage: gmailtls relays [--config FILE] [--json]

Lists the configured relays (kind, agent URL, source IPs, paused) and the
retired ones whose history is kept.

`

func runRelays(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("relays", flag.ContinueOnError)
	path, explicit := svcFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := svcParse(e, fs, relaysUsage, args); !ok {
		return code
	}
	s, code := svcOpen(ctx, e, *path, explicit())
	if s == nil {
		return code
	}
	defer s.Close()
	m, err := s.h.Relays(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls relays: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		err = writeJSON(e.stdout, m)
	} else {
		err = commands.RenderText(e.stdout, s.h.RelaysResponse(m))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls relays: %v\n", err)
		return exitFailed
	}
	return exitOK
}
