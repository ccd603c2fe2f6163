package alerts

import (
	"context"
	"log/slog"
	"slices"

	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// Checker probes one relay, narrowed to the given MX hosts (all of the
// target when empty), and stores the run. The wiring passes
// monitor.Monitor.CheckRelay with trigger "confirm".
type Checker func(ctx context.Context, relay string, mx []string) ([]probe.Result, error)

// NewConfirm builds the ConfirmFunc of DESIGN.md: the failing relay is
// probed again, and the first other relay that relays lists (the active,
// unpaused relays) is probed toward the failing MX hosts; its results
// toward the failing MX addresses are the second opinion. Without such a
// relay, or when its probe cannot run (logged), the alert has the re-probe
// alone.
func NewConfirm(check Checker, relays func(ctx context.Context) []string, log *slog.Logger) ConfirmFunc {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, relay string, failing []storage.StoredResult) ([]probe.Result, []probe.Result, string, error) {
		again, err := check(ctx, relay, nil)
		if err != nil {
			return nil, nil, "", err
		}
		var mx, ips []string
		for _, r := range failing {
			if r.OK || r.Failure.IsRelayFailure() {
				continue
			}
			if !slices.Contains(mx, r.MX) {
				mx = append(mx, r.MX)
			}
			if !slices.Contains(ips, r.IP) {
				ips = append(ips, r.IP)
			}
		}
		if len(mx) == 0 || relays == nil {
			return again, nil, "", nil
		}
		for _, other := range relays(ctx) {
			if other == relay {
				continue
			}
			second, err := check(ctx, other, mx)
			if err != nil {
				log.Warn("alerts: the second relay could not confirm", "relay", relay, "second", other, "err", err)
				return again, nil, "", nil
			}
			same := slices.DeleteFunc(second, func(r probe.Result) bool { return !slices.Contains(ips, r.IP) })
			if len(same) == 0 {
				return again, nil, "", nil
			}
			return again, same, other, nil
		}
		return again, nil, "", nil
	}
}
