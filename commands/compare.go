package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// prepareCompare accepts two different relays, each configured or with
// stored history.
func (h *Handler) prepareCompare(ctx context.Context, c *call) error {
	if c.cmd.Relay == c.cmd.Other {
		return syntaxErr(VerbCompare, "compare needs two different relays: %s", VerbCompare.Usage())
	}
	if err := h.checkRelayName(ctx, c.snap, c.cmd.Relay, true); err != nil {
		return err
	}
	return h.checkRelayName(ctx, c.snap, c.cmd.Other, true)
}

func (h *Handler) runCompare(ctx context.Context, c *call) (Reply, error) {
	m, err := h.svc.Compare(ctx, c.snap, c.cmd.Relay, c.cmd.Other)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Response: compareMessage(m), Data: m}, nil
}

// compareResponse answers a Compare button.
func (h *Handler) compareResponse(ctx context.Context, snap *monitor.Snapshot, b buttonValue) (message.Response, error) {
	if b.Other == "" || b.Other == b.Relay {
		return message.Response{}, errors.New("that Compare button names no second relay; run `compare <relay> <relay>`")
	}
	m, err := h.svc.Compare(ctx, snap, b.Relay, b.Other)
	if err != nil {
		return message.Response{}, err
	}
	return compareMessage(m), nil
}

// compareMessage shows a CompareModel: the fields that differ, each with
// both relays' values, then those that are the same.
func compareMessage(m monitor.CompareModel) message.Response {
	a, b := m.Relays[0], m.Relays[1]
	resp := message.Response{
		Title:     fmt.Sprintf("%s beside %s: %s differ", a, b, plural(len(m.Differs), "field")),
		Verdict:   message.VerdictInfo,
		Summary:   fmt.Sprintf("%s vs %s: %d differ, %d the same", a, b, len(m.Differs), len(m.Same)),
		Ephemeral: true,
	}
	differs := message.Section{Heading: "Differs"}
	for _, f := range m.Differs {
		differs.Fields = append(differs.Fields, message.Field{Label: f.Name, Value: fmt.Sprintf("%s: %s · %s: %s", a, clipBytes(f.Values[0], 300), b, clipBytes(f.Values[1], 300))})
	}
	if len(m.Differs) == 0 {
		differs.Lines = []string{"nothing: the two relays look alike in every compared field"}
	}
	same := message.Section{Heading: "Same"}
	for _, f := range m.Same {
		same.Fields = append(same.Fields, message.Field{Label: f.Name, Value: clipBytes(f.Values[0], 300)})
	}
	resp.Sections = append(resp.Sections, differs, same)
	var notes []string
	for _, s := range m.Sides {
		if s.HostError != "" {
			notes = append(notes, fmt.Sprintf("%s: host info not available: %s", s.Relay, s.HostError))
		}
		if s.PolicyError != "" {
			notes = append(notes, fmt.Sprintf("%s: TLS policy not available: %s", s.Relay, s.PolicyError))
		}
		if s.Log != nil && !s.Log.Available {
			notes = append(notes, fmt.Sprintf("%s: mail log not available: %s", s.Relay, s.Log.Error))
		}
	}
	if len(notes) > 0 {
		resp.Sections = append(resp.Sections, message.Section{Heading: "Not compared", Lines: notes})
	}
	resp.Context = fmt.Sprintf("evidence %s · evidence %s for the details", a, b)
	return resp
}

// compareValue is a Compare button's value: the failing relay and the
// healthy one.
func compareValue(failing, healthy string) string {
	return url.Values{"relay": {failing}, "other": {healthy}}.Encode()
}

// compareButton is the Compare button of a failing relay beside a healthy
// one.
func compareButton(failing, healthy string) message.Button {
	return message.Button{Label: "Compare with " + healthy, Action: message.ActionCompare, Value: compareValue(failing, healthy)}
}

// healthyRelay is the first other configured relay (in name order) whose
// latest stored run passed; "" when none did.
func (h *Handler) healthyRelay(ctx context.Context, snap *monitor.Snapshot, failing string) string {
	for _, name := range snap.Names() {
		if name == failing {
			continue
		}
		last, err := h.svc.History(ctx, monitor.HistoryQuery{Relay: name, Limit: 64})
		if err != nil || len(last) == 0 {
			continue
		}
		run, ok := last[0].RunID, true
		for _, r := range last {
			if r.RunID == run && !r.OK {
				ok = false
				break
			}
		}
		if ok {
			return name
		}
	}
	return ""
}

// withCompare adds a Compare button to a failing relay's check answer
// when another configured relay's latest run passed.
func (h *Handler) withCompare(ctx context.Context, snap *monitor.Snapshot, resp *message.Response, c monitor.CheckResult) {
	if c.OK() || c.AgentOnly() || c.NotStored != nil {
		return
	}
	if healthy := h.healthyRelay(ctx, snap, c.Relay); healthy != "" {
		resp.Buttons = append(resp.Buttons, compareButton(c.Relay, healthy))
	}
}

// checkAllCompare is the Compare button of a check of every relay: the
// first failing relay beside the first that passed; ok is false unless
// one failed (not only its agent) and another passed.
func checkAllCompare(all []monitor.CheckResult) (message.Button, bool) {
	var failing, healthy string
	for _, c := range all {
		switch {
		case c.OK():
			healthy = cmp.Or(healthy, c.Relay)
		case !c.AgentOnly():
			failing = cmp.Or(failing, c.Relay)
		}
	}
	if failing == "" || healthy == "" {
		return message.Button{}, false
	}
	return compareButton(failing, healthy), true
}
