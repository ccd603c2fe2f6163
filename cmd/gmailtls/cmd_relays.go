package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
)

const relaysUsage = `usage: gmailtls relays [--config FILE] [--json]

Lists the configured relays (kind, agent URL, source IPs, paused) with
their state (escalation level and scope, last success, last failure with
its class), and the retired ones whose history is kept. The state is the
one gmailtls status shows; looking never changes it.

`

// relaysJSON is what relays --json prints: commands.RelaysModel with each
// configured relay's state from commands.StatusModel beside its
// configuration.
type relaysJSON struct {
	At     time.Time   `json:"at"`
	Relays []relayJSON `json:"relays"`
}

// relayJSON is one relay in relays --json. Retired relays have no level:
// escalation no longer evaluates them.
type relayJSON struct {
	commands.RelayInfo
	Level            escalation.Level `json:"level,omitempty"`
	Scope            escalation.Scope `json:"scope,omitempty"`
	LastSuccess      *time.Time       `json:"last_success"`
	LastFailure      *time.Time       `json:"last_failure"`
	LastFailureClass string           `json:"last_failure_class,omitempty"`
}

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
	st, err := s.h.Status(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls relays: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		err = writeJSON(e.stdout, relaysWithState(m, st))
	} else {
		resp := s.h.RelaysResponse(m)
		resp.Sections = append(resp.Sections, stateSections(s.h.StatusResponse(st))...)
		err = commands.RenderText(e.stdout, resp)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls relays: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// relaysWithState puts each configured relay's state beside it.
func relaysWithState(m commands.RelaysModel, st commands.StatusModel) relaysJSON {
	byName := map[string]commands.RelayStatus{}
	for _, r := range st.Relays {
		byName[r.Relay] = r
	}
	out := relaysJSON{At: m.At, Relays: make([]relayJSON, 0, len(m.Relays))}
	for _, ri := range m.Relays {
		rj := relayJSON{RelayInfo: ri}
		if rs, ok := byName[ri.Name]; ok && !ri.Retired {
			rj.Level, rj.Scope = rs.Level, rs.Scope
			rj.LastSuccess, rj.LastFailure, rj.LastFailureClass = rs.LastSuccess, rs.LastFailure, rs.LastFailureClass
		}
		out.Relays = append(out.Relays, rj)
	}
	return out
}

// stateSections are the per-relay lines of the status message (level and
// scope, last success, last failure), headed "State".
func stateSections(status message.Response) []message.Section {
	var out []message.Section
	for _, sec := range status.Sections {
		if rest, ok := strings.CutPrefix(sec.Heading, "Relays"); ok {
			sec.Heading = "State" + rest
			out = append(out, sec)
		}
	}
	return out
}
