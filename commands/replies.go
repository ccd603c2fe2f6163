package commands

import (
	"context"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
)

// CheckModel is what `gmailtls check --json` prints: each relay probed,
// stored and evaluated, and the level across relays after the check.
type CheckModel struct {
	At     time.Time            `json:"at"`
	Relays []RelayCheck         `json:"relays"`
	Global monitor.GlobalStatus `json:"global"`
	MX     string               `json:"mx,omitempty"`
}

// RelayCheck is one relay of a check: its stored run and results, its
// level after the run, and the level changes the run caused.
type RelayCheck struct {
	Relay     string           `json:"relay"`
	Kind      string           `json:"kind"`
	OK        bool             `json:"ok"`
	RunID     int64            `json:"run_id"`
	ResultIDs []int64          `json:"result_ids"`
	Level     escalation.Level `json:"level"`
	Scope     escalation.Scope `json:"scope,omitempty"`
	Advice    string           `json:"advice,omitempty"`
	Changes   []LevelChange    `json:"changes"`
	// Report is the probe report, as `gmailtls probe --json` prints it.
	Report probe.Report `json:"report"`
	// NotStored says why the run could not be stored (the disk is
	// full…); absent when it was. Such a run changed no level.
	NotStored string `json:"not_stored,omitempty"`
}

// LevelChange is one change of level ("" relay: across relays).
type LevelChange struct {
	Relay string           `json:"relay,omitempty"`
	From  escalation.Level `json:"from"`
	To    escalation.Level `json:"to"`
	Scope escalation.Scope `json:"scope,omitempty"`
	At    time.Time        `json:"at"`
}

// runCheck probes one relay or all of them, stores the runs and
// re-evaluates escalation: the check prepared when the command was read.
func (h *Handler) runCheck(ctx context.Context, c *call) (Reply, error) {
	var (
		all  []monitor.CheckResult
		resp message.Response
		cmd  = c.cmd
	)
	c.check.OnResult = progressOf(ctx)
	if cmd.Relay == message.AllRelays {
		var err error
		if all, err = h.svc.CheckAll(ctx, c.check); err != nil && !anyNotStored(all) {
			return Reply{}, err
		}
		resp = notStoredResponse(h.checkAllResponse(c.snap, all, cmd.MX), all)
	} else {
		res, err := h.svc.CheckRelay(ctx, c.check)
		if err != nil && res.NotStored == nil {
			return Reply{}, err
		}
		all, resp = []monitor.CheckResult{res}, notStoredResponse(h.checkResponse(c.snap, res, nil), []monitor.CheckResult{res})
		h.withCompare(ctx, c.snap, &resp, res)
	}
	m := CheckModel{At: h.now(), Relays: make([]RelayCheck, 0, len(all)), MX: cmd.MX}
	failed := false
	for _, r := range all {
		failed = failed || !r.OK() || r.NotStored != nil
		rc := RelayCheck{Relay: r.Relay, Kind: r.Kind, OK: r.OK(), RunID: r.RunID, ResultIDs: r.ResultIDs,
			Level: escalation.Max(r.State.Level), Scope: r.State.Scope, Advice: r.State.Advice,
			Changes: []LevelChange{}, Report: r.Report}
		for _, ch := range r.Changes {
			rc.Changes = append(rc.Changes, LevelChange{Relay: ch.Relay, From: ch.From, To: ch.To, Scope: ch.Scope, At: ch.At})
		}
		if r.NotStored != nil {
			rc.NotStored = UserText(r.NotStored)
		}
		m.Relays = append(m.Relays, rc)
		m.Global = monitor.NewGlobalStatus(r.Global)
	}
	return Reply{Response: resp, Data: m, Failed: failed}, nil
}

// anyNotStored reports whether a check ran but could not be stored: its
// results are still shown.
func anyNotStored(all []monitor.CheckResult) bool {
	for _, r := range all {
		if r.NotStored != nil {
			return true
		}
	}
	return false
}

// notStoredResponse adds to resp, the answer to a check, a line per run
// that could not be stored ("not stored: … the disk is full"): the
// results shown are what the probe found, not history. Buttons, which
// name stored runs and results, go.
func notStoredResponse(resp message.Response, all []monitor.CheckResult) message.Response {
	var lines []string
	for _, r := range all {
		if r.NotStored != nil {
			lines = append(lines, "not stored: "+UserText(r.NotStored)+"; these results are not in history and changed no level")
		}
	}
	if len(lines) == 0 {
		return resp
	}
	resp.Sections = append([]message.Section{{Heading: "Not stored", Lines: lines}}, resp.Sections...)
	resp.Summary += " (not stored)"
	resp.Buttons = nil
	for i := range resp.Thread {
		resp.Thread[i].Buttons = nil
	}
	return resp
}

func (h *Handler) runStatus(ctx context.Context, c *call) (Reply, error) {
	m, err := h.svc.Status(ctx, c.snap)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Response: h.StatusResponse(m), Data: m}, nil
}

func (h *Handler) runReport(ctx context.Context, c *call) (Reply, error) {
	m, err := h.summary(ctx, c.snap, c.cmd.Window)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Response: h.SummaryResponse(m), Data: m}, nil
}

// RelayListing is what `gmailtls relays --json` prints: each relay's
// configuration (RelaysModel) with its state as status derives it.
type RelayListing struct {
	At     time.Time    `json:"at"`
	Relays []RelayEntry `json:"relays"`
}

// RelayEntry is one relay of a RelayListing. Retired relays have no level:
// escalation no longer evaluates them.
type RelayEntry struct {
	monitor.RelayInfo
	Level            escalation.Level `json:"level,omitempty"`
	Scope            escalation.Scope `json:"scope,omitempty"`
	LastSuccess      *time.Time       `json:"last_success"`
	LastFailure      *time.Time       `json:"last_failure"`
	LastFailureClass string           `json:"last_failure_class,omitempty"`
}

// runRelays lists the relays with their state: the configured ones, then
// the retired ones, then the state lines of status.
func (h *Handler) runRelays(ctx context.Context, c *call) (Reply, error) {
	m, err := h.svc.Relays(ctx, c.snap)
	if err != nil {
		return Reply{}, err
	}
	st, err := h.svc.Status(ctx, c.snap)
	if err != nil {
		return Reply{}, err
	}
	byName := map[string]monitor.RelayStatus{}
	for _, r := range st.Relays {
		byName[r.Relay] = r
	}
	out := RelayListing{At: m.At, Relays: make([]RelayEntry, 0, len(m.Relays))}
	for _, ri := range m.Relays {
		re := RelayEntry{RelayInfo: ri}
		if rs, ok := byName[ri.Name]; ok && !ri.Retired {
			re.Level, re.Scope = rs.Level, rs.Scope
			re.LastSuccess, re.LastFailure, re.LastFailureClass = rs.LastSuccess, rs.LastFailure, rs.LastFailureClass
		}
		out.Relays = append(out.Relays, re)
	}
	resp := h.RelaysResponse(m)
	// The per-relay lines of status (level and scope, last success, last
	// failure), headed "State".
	for _, sec := range h.StatusResponse(st).Sections {
		if rest, ok := strings.CutPrefix(sec.Heading, "Relays"); ok {
			sec.Heading = "State" + rest
			resp.Sections = append(resp.Sections, sec)
		}
	}
	return Reply{Response: resp, Data: out}, nil
}
