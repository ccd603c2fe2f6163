package alerts

import (
	"context"
	"slices"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// confirmedBy names the confirming re-probes in storage (RequestedBy).
const confirmedBy = "gmailtls"

// reprobe confirms a failure before an alert goes out, through the
// Monitor (runs stored with trigger confirm): the failing relay is probed
// again toward the whole target (again), and the first other active
// relay (not paused) is probed toward the MX hosts that failed; its
// results toward the failing addresses are the second opinion (second,
// from secondRelay). Without such a relay, or when its probe cannot run
// (logged), the alert has the re-probe alone. failing are the stored
// results behind the level.
func (a *Alerter) reprobe(ctx context.Context, relay string, failing []storage.StoredResult) (again, second []probe.Result, secondRelay string, err error) {
	check := func(name string, mx []string) ([]probe.Result, error) {
		c, err := a.Monitor.CheckRelay(ctx, monitor.Check{Relay: name, MX: mx, Trigger: message.SourceConfirm, RequestedBy: confirmedBy})
		return c.Report.Results, err
	}
	again, err = check(relay, nil)
	if err != nil || ctx.Err() != nil {
		// Stopping: the caller discards a re-probe cut short, and no
		// second relay is asked.
		return again, nil, "", err
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
	if len(mx) == 0 {
		return again, nil, "", nil
	}
	others, err := a.Monitor.ActiveRelays(ctx)
	if err != nil {
		a.log().Warn("alerts: no second relay to confirm with", "relay", relay, "err", err)
		return again, nil, "", nil
	}
	for _, other := range others {
		if other == relay {
			continue
		}
		second, err := check(other, mx)
		if err != nil {
			a.log().Warn("alerts: the second relay could not confirm", "relay", relay, "second", other, "err", err)
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
