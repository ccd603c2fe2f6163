package fakerelay

import (
	"time"

	"github.com/gmailtls/gmailtls/config"
)

// LabMX is the pinned target of Lab: one MX with a port, one without.
var LabMX = []string{"127.0.0.1:2525", "mx2.test.example"}

// Lab returns the configuration the monitor and command tests share — the
// default one with LabMX pinned and one local relay per name (relay-1 to
// relay-3 when none are given) — and a scripted Runner per relay at the
// clock now.
func Lab(now func() time.Time, relays ...string) (*config.Config, map[string]*Runner) {
	if len(relays) == 0 {
		relays = []string{"relay-1", "relay-2", "relay-3"}
	}
	cfg := config.Default()
	cfg.Target.MX = append([]string(nil), LabMX...)
	cfg.Relays = nil
	runners := make(map[string]*Runner, len(relays))
	for _, r := range relays {
		cfg.Relays = append(cfg.Relays, config.Relay{Name: r, Kind: "local"})
		runners[r] = New(r, now, LabMX...)
	}
	return cfg, runners
}
