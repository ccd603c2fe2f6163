package relay

import (
	"cmp"
	"context"
	"fmt"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/probe"
)

// NamesOnly stands for the relays of cfg, by name, in a command that does
// not talk to them (gmailtls status, history, …): each has its name and
// kind and refuses to probe, so no agent secret is needed and no
// connection made. Runners builds the real ones.
func NamesOnly(cfg *config.Config) map[string]Runner {
	runners := make(map[string]Runner, len(cfg.Relays))
	for _, r := range cfg.Relays {
		runners[r.Name] = nameOnly{name: r.Name, kind: cmp.Or(r.Kind, KindLocal)}
	}
	return runners
}

// nameOnly is a relay of NamesOnly.
type nameOnly struct{ name, kind string }

func (r nameOnly) Probe(context.Context, Options) (probe.Report, error) {
	return probe.Report{}, fmt.Errorf("relay %s: this command does not probe", r.name)
}
func (r nameOnly) Name() string { return r.name }
func (r nameOnly) Kind() string { return r.kind }
