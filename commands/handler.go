// Package commands is the /gmailtls grammar and what answers it: a request
// from Slack, the console or the CLI is parsed (Parse), authorized against
// [access] (Authorize; admins for pause, resume and the alerts'
// Acknowledge and Mute buttons), audited, and answered with a Slack-free
// message.Response.
//
// A request is handled in two steps, as Slack wants: Acknowledge answers
// at once, without waiting on the network, and reads the request under one
// snapshot of the configuration (the relay exists, --mx names the
// configured target); Run then does the work with what Acknowledge read,
// through small interfaces: Service (the monitor: checks, evaluations,
// the models of status, report, relays and evidence), Store (history,
// transcripts, pauses, the audit log) and Alerts (the alerter's Acknowledge and Mute). Everything here
// is presentation: what to probe and how levels move is the monitor's.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// Service is what commands needs of the monitoring service
// (*monitor.Monitor): the configuration in force, checks and the current
// escalation state.
type Service interface {
	// Snapshot is the configuration in force; a request takes it once.
	Snapshot() *monitor.Snapshot
	// CheckRelay and CheckAll probe, store and evaluate a prepared check.
	CheckRelay(ctx context.Context, c monitor.Check) (monitor.CheckResult, error)
	CheckAll(ctx context.Context, c monitor.Check) ([]monitor.CheckResult, error)
	// Assess computes the escalation state without storing anything.
	Assess(ctx context.Context, snap *monitor.Snapshot) (escalation.Assessment, error)
	// Status, Summary and Relays compute the read-only models of status,
	// report and relays.
	Status(ctx context.Context, snap *monitor.Snapshot) (monitor.StatusModel, error)
	Summary(ctx context.Context, snap *monitor.Snapshot, window time.Duration) (monitor.SummaryModel, error)
	Relays(ctx context.Context, snap *monitor.Snapshot) (monitor.RelaysModel, error)
	// Evidence gathers a relay's results, their transcripts, its host and
	// queue, asked now.
	Evidence(ctx context.Context, snap *monitor.Snapshot, q monitor.EvidenceQuery) (monitor.EvidenceModel, error)
	// Compare gathers two relays' evidence and compares them.
	Compare(ctx context.Context, snap *monitor.Snapshot, a, b string) (monitor.CompareModel, error)
	// History reads stored results, newest first; Result one of them with
	// its transcript (found false once retention removed it).
	History(ctx context.Context, q monitor.HistoryQuery) ([]monitor.StoredResult, error)
	Result(ctx context.Context, id int64) (r monitor.StoredResult, found bool, err error)
	// KnownRelay reports whether a relay has stored history, configured
	// or retired.
	KnownRelay(ctx context.Context, name string) (bool, error)
	// Pause and Resume start and end a relay's pause from scheduled
	// probing.
	Pause(ctx context.Context, relayName string, until time.Time, by string) error
	Resume(ctx context.Context, relayName, by string) error
	// Audit writes one request to the audit log.
	Audit(ctx context.Context, a monitor.AuditEntry) error
}

// Alerts is what the Acknowledge and Mute buttons of alerts need
// (*alerts.Alerter). The Response is for the person who pressed the
// button and always meaningful; the error is for the log.
type Alerts interface {
	Acknowledge(ctx context.Context, incidentID int64, userID string) (message.Response, error)
	Mute(ctx context.Context, incidentID int64, userID string, d time.Duration) (message.Response, error)
}

// Deps is what a Handler needs. Service is required to run commands; a
// Handler without it only builds messages.
type Deps struct {
	Service Service
	// Alerts runs the alert buttons; nil answers them that alerts are not
	// configured.
	Alerts Alerts
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives operational logs (default: discarded).
	Logger *slog.Logger
	// Location is the time zone times are shown in (default time.Local).
	Location *time.Location
}

// Handler runs /gmailtls commands and buttons: it parses, authorizes,
// audits, asks the service (the monitor), and answers with a Response.
// It satisfies the bot's Handler interface and serves the console. It is
// safe for concurrent use.
type Handler struct {
	svc    Service
	alerts Alerts
	now    func() time.Time
	log    *slog.Logger
	loc    *time.Location
	// bare is the snapshot of a Handler without a service: the defaults.
	bare *monitor.Snapshot
	// pending carries what Acknowledge read over to Run.
	pending pendingCalls
}

// ErrUnknownRelay marks a relay name that is not configured.
var ErrUnknownRelay = monitor.ErrUnknownRelay

// ErrTarget marks an --mx host that is not part of the configured target.
var ErrTarget = monitor.ErrTarget

// New returns a Handler over deps.
func New(deps Deps) *Handler {
	h := &Handler{
		svc:    deps.Service,
		alerts: deps.Alerts,
		now:    deps.Now,
		log:    deps.Logger,
		loc:    deps.Location,
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.loc == nil {
		h.loc = time.Local
	}
	if h.svc == nil {
		h.bare = monitor.NewSnapshot(nil, nil, escalation.Policy{})
	}
	h.pending.now = h.now
	return h
}

// snapshot returns the configuration in force; a request takes it once,
// at its start, and works under it to the end.
func (h *Handler) snapshot() *monitor.Snapshot {
	if h.svc == nil {
		return h.bare
	}
	return h.svc.Snapshot()
}

// slashPrefix is what commands are typed after in Slack: the slash
// command and a space.
func slashPrefix(snap *monitor.Snapshot) string {
	if c := snap.Config.Slack.Command; c != "" {
		return c + " "
	}
	return "/gmailtls "
}

// prefix is what the requester types a command after: the slash command
// in Slack, the program in a shell, nothing in the console.
func (c *call) prefix() string {
	switch c.req.Source {
	case message.SourceCLI:
		return "gmailtls "
	case message.SourceConsole:
		return ""
	}
	return slashPrefix(c.snap)
}

// checkRelayName reports whether name is configured or, with
// allowRetired, in the stored history (retired relays keep their history
// and can be looked at).
func (h *Handler) checkRelayName(ctx context.Context, snap *monitor.Snapshot, name string, allowRetired bool) error {
	_, err := snap.Runner(name)
	if err == nil || !allowRetired {
		return err
	}
	if known, rerr := h.svc.KnownRelay(ctx, name); rerr == nil && known {
		return nil
	}
	return err
}

// call is one request under way: what was asked, the configuration it
// runs under, and what Acknowledge read of it (the command, or the button
// value; for a check, the check prepared once).
type call struct {
	req    message.Request
	snap   *monitor.Snapshot
	cmd    Command
	button buttonValue
	check  monitor.Check
	// mxArg is the --mx host as given, for the acknowledgement.
	mxArg string
}

// Acknowledge answers a request at once, without waiting on the network or
// the database: syntax errors, refusals and help are answered in full
// (more=false); everything else gets a short acknowledgement and more=true,
// and the caller then calls Run in the background. What it read (the
// configuration snapshot, the parsed and checked command) is kept for
// that Run, so a request is parsed, authorized and validated once.
func (h *Handler) Acknowledge(ctx context.Context, req message.Request) (ack message.Response, more bool) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("commands: panic while acknowledging a command", "panic", p, "stack", string(debug.Stack()))
			ack, more = internalError(), false
		}
	}()
	c, ack, more := h.read(ctx, req)
	if more {
		h.pending.put(req, c)
	}
	return ack, more
}

// read takes the configuration snapshot of a request, parses it, checks
// access and what can be checked without waiting (the relay exists, --mx
// names the configured target), and returns the immediate answer. With
// more=false the answer is final and audited.
func (h *Handler) read(ctx context.Context, req message.Request) (c *call, ack message.Response, more bool) {
	c = &call{req: req, snap: h.snapshot()}
	if req.Action != "" {
		ack, more = h.readButton(ctx, c)
		return c, ack, more
	}
	cmd, err := Parse(req.Text)
	if err != nil {
		h.audit(ctx, req, "syntax error: "+err.Error())
		return c, ErrorResponse(c.prefix(), err), false
	}
	c.cmd = cmd
	if err := Authorize(c.snap.Config.Access, req, cmd.Verb); err != nil {
		h.audit(ctx, req, "refused: "+refusalReason(err))
		return c, refused(err), false
	}
	spec := lookupVerb(cmd.Verb)
	if spec.prepare != nil {
		if err := spec.prepare(h, ctx, c); err != nil {
			h.audit(ctx, req, "error: "+err.Error())
			return c, ErrorResponse(c.prefix(), err), false
		}
	}
	switch {
	case spec.instant:
		reply, err := spec.run(h, ctx, c)
		if err != nil {
			h.audit(ctx, req, "error: "+err.Error())
			return c, ErrorResponse(c.prefix(), err), false
		}
		h.audit(ctx, req, "ok")
		return c, reply.Response, false
	case spec.ack != nil:
		return c, spec.ack(c), true
	}
	return c, message.Response{
		Title:     fmt.Sprintf("gmailtls %s: working on it…", cmd.Verb),
		Verdict:   message.VerdictInfo,
		Summary:   fmt.Sprintf("gmailtls %s…", cmd.Verb),
		Ephemeral: true,
	}, true
}

// Run runs a request that Acknowledge answered with more=true, with what
// Acknowledge read (a Run without it reads the request itself; after
// more=false it repeats the same answer). It never returns an empty
// Response: errors become an explanation.
func (h *Handler) Run(ctx context.Context, req message.Request) (resp message.Response) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("commands: panic while running a command", "text", req.Text, "action", req.Action, "panic", p, "stack", string(debug.Stack()))
			h.audit(ctx, req, "internal error")
			resp = internalError()
		}
	}()
	c, ok := h.pending.take(req)
	if !ok {
		var ack message.Response
		var more bool
		if c, ack, more = h.read(ctx, req); !more {
			return ack
		}
	}
	if req.Action != "" {
		return h.runButton(ctx, c)
	}
	reply, err := lookupVerb(c.cmd.Verb).run(h, ctx, c)
	if err != nil {
		if ctx.Err() == nil { // an interrupted command is no failure to log
			h.log.Warn("commands: command failed", "text", req.Text, "user", req.Requester(), "err", err)
		}
		h.audit(ctx, req, "error: "+err.Error())
		return ErrorResponse(c.prefix(), err)
	}
	h.audit(ctx, req, "ok")
	return reply.Response
}

// Do runs a request to the end: Acknowledge, then Run when more is needed.
// The console uses it.
func (h *Handler) Do(ctx context.Context, req message.Request) message.Response {
	ack, more := h.Acknowledge(ctx, req)
	if !more {
		return ack
	}
	return h.Run(ctx, req)
}

// Exec runs a parsed command to the end and returns the whole Reply, the
// data behind the message included: the CLI twins use it. It takes the
// configuration snapshot, authorizes, prepares and runs like Acknowledge
// and Run, but returns errors instead of explaining them: errors.Is tells
// ErrSyntax, ErrUnknownRelay, ErrTarget and ErrRefused (the requester's
// mistakes) from the rest. Commands that write (Verb.Writes) are audited;
// the others only read, from a database the command line may have opened
// read-only.
func (h *Handler) Exec(ctx context.Context, req message.Request, cmd Command) (reply Reply, err error) {
	if req.Text == "" {
		req.Text = cmd.String()
	}
	spec := lookupVerb(cmd.Verb)
	if spec == nil {
		return Reply{}, fmt.Errorf("%w: unknown command %q; the commands are %s", ErrSyntax, cmd.Verb, verbList())
	}
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("commands: panic while running a command", "text", req.Text, "panic", p, "stack", string(debug.Stack()))
			reply, err = Reply{}, fmt.Errorf("internal error: %v", p)
		}
		if spec.writes {
			outcome := "ok"
			if err != nil {
				outcome = "error: " + err.Error()
			}
			h.audit(ctx, req, outcome)
		}
	}()
	c := &call{req: req, snap: h.snapshot(), cmd: cmd}
	if err := Authorize(c.snap.Config.Access, req, cmd.Verb); err != nil {
		return Reply{}, err
	}
	if spec.prepare != nil {
		if err := spec.prepare(h, ctx, c); err != nil {
			return Reply{}, err
		}
	}
	return spec.run(h, ctx, c)
}

// triggerOf maps a request's source to the trigger recorded on a run.
func triggerOf(req message.Request) message.Source {
	if req.Source == "" {
		return message.SourceCLI
	}
	return req.Source
}

// PauseModel is what `gmailtls pause --json` and `gmailtls resume --json`
// print: the relay, and until when scheduled probing skips it (null once
// resumed).
type PauseModel struct {
	Relay       string     `json:"relay"`
	PausedUntil *time.Time `json:"paused_until"`
	By          string     `json:"by"`
}

func (h *Handler) pause(ctx context.Context, c *call) (Reply, error) {
	req, cmd := c.req, c.cmd
	until := h.now().Add(cmd.Duration)
	if err := h.svc.Pause(ctx, cmd.Relay, until, req.Who()); err != nil {
		return Reply{}, fmt.Errorf("pause %s: %w", cmd.Relay, err)
	}
	h.log.Info("relay paused", "relay", cmd.Relay, "until", until, "by", req.Who())
	return Reply{Response: message.Response{
		Title:   fmt.Sprintf("%s paused until %s by %s", cmd.Relay, h.clock(until), req.Who()),
		Verdict: message.VerdictInfo,
		Summary: fmt.Sprintf("%s paused for %s", cmd.Relay, FormatWindow(cmd.Duration)),
		Sections: []message.Section{{Lines: []string{
			"Scheduled probing skips it until then; `check " + cmd.Relay + "` still works.",
			fmt.Sprintf("Resume earlier with `%sresume %s`.", c.prefix(), cmd.Relay),
		}}},
	}, Data: PauseModel{Relay: cmd.Relay, PausedUntil: &until, By: req.Who()}}, nil
}

func (h *Handler) resume(ctx context.Context, c *call) (Reply, error) {
	req, cmd := c.req, c.cmd
	if err := h.svc.Resume(ctx, cmd.Relay, req.Who()); err != nil {
		return Reply{}, fmt.Errorf("resume %s: %w", cmd.Relay, err)
	}
	h.log.Info("relay resumed", "relay", cmd.Relay, "by", req.Who())
	return Reply{Response: message.Response{
		Title:    fmt.Sprintf("%s resumed by %s", cmd.Relay, req.Who()),
		Verdict:  message.VerdictInfo,
		Summary:  cmd.Relay + " resumed",
		Sections: []message.Section{{Lines: []string{"Scheduled probing includes it again from the next round."}}},
	}, Data: PauseModel{Relay: cmd.Relay, By: req.Who()}}, nil
}

// auditTimeout bounds one audit log write.
const auditTimeout = time.Second

// audit writes the request to the audit log; a failure is logged, never
// shown: the command itself went through.
func (h *Handler) audit(ctx context.Context, req message.Request, outcome string) {
	text := req.Text
	switch {
	case alertButton(req.Action):
		// The wording the alerter has always audited these presses with.
		text = req.Action + " incident " + strings.TrimSpace(req.Value)
	case req.Action != "":
		text = strings.TrimSpace("button " + req.Action + " " + req.Value)
	}
	if len(outcome) > 500 {
		outcome = clipBytes(outcome, 500)
	}
	// Bounded: Acknowledge audits too, and Slack waits 3 s for the ack.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	err := h.svc.Audit(ctx, monitor.AuditEntry{
		UserID:    req.UserID,
		UserName:  req.UserName,
		ChannelID: req.ChannelID,
		Text:      clipBytes(text, 1000),
		Source:    req.Source,
		At:        h.now(),
		Outcome:   outcome,
	})
	if err != nil {
		h.log.Warn("commands: could not write the audit log", "err", err)
	}
}

func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func refusalReason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrRefused.Error()+": ")
}

// refused is the ephemeral answer to a refused request.
func refused(err error) message.Response {
	reason := refusalReason(err)
	return message.Response{
		Title:     "gmailtls refused this command",
		Verdict:   message.VerdictRefused,
		Summary:   reason,
		Sections:  []message.Section{{Lines: []string{reason}}},
		Ephemeral: true,
	}
}

func internalError() message.Response {
	return message.Response{
		Title:     "gmailtls hit an internal error",
		Verdict:   message.VerdictFail,
		Summary:   "internal error; the bot's log has the details",
		Sections:  []message.Section{{Lines: []string{"Something broke inside gmailtls; the details are in its log. Please report it."}}},
		Ephemeral: true,
	}
}

// prepareCheck prepares the check of relayName (message.AllRelays: every
// relay) toward mx (all of the target when empty) under the request's
// snapshot, once: the relay must be configured and --mx one of the
// configured target's MX hosts, so that no command can aim gmailtls at
// another host or port.
func (h *Handler) prepareCheck(c *call, relayName, mx string) error {
	check := monitor.Check{Relay: relayName, Trigger: triggerOf(c.req), RequestedBy: c.req.Requester()}
	if relayName == message.AllRelays {
		check.Relay = ""
		if len(c.snap.Names()) == 0 {
			return fmt.Errorf("%w: no relays are configured; add a [[relay]] block to the configuration", ErrUnknownRelay)
		}
	}
	if mx != "" {
		check.MX = []string{mx}
	}
	c.mxArg = mx
	check, err := c.snap.Prepare(check)
	if err != nil {
		return err
	}
	c.check = check
	return nil
}

// targetLabel names the target in titles: "Gmail" for gmail.com.
func targetLabel(snap *monitor.Snapshot) string {
	switch d := strings.ToLower(snap.Config.Target.Domain); d {
	case "", "gmail.com", "googlemail.com":
		return "Gmail"
	default:
		return d
	}
}

// checkAck is the immediate answer to a prepared check.
func checkAck(c *call) message.Response {
	t := c.snap.Config.Target
	label := targetLabel(c.snap)
	var dest string
	switch {
	case len(c.check.MX) > 0:
		dest = c.mxArg
	case len(t.MX) > 0:
		dest = fmt.Sprintf("%d %s MX hosts", len(t.MX), label)
		if len(t.MX) == 1 {
			dest = fmt.Sprintf("1 %s MX host", label)
		}
	default:
		domain := t.Domain
		if domain == "" {
			domain = "gmail.com"
		}
		dest = fmt.Sprintf("the %s MX hosts of %s", label, domain)
	}
	who := c.check.Relay
	if who == "" {
		n := len(c.snap.Names())
		who = fmt.Sprintf("%d relays", n)
		if n == 1 {
			who = "1 relay"
		}
	}
	text := fmt.Sprintf("probing %s → %s…", who, dest)
	return message.Response{Title: text, Verdict: message.VerdictInfo, Summary: text}
}

// Buttons. Their values are URL query strings, bounded well below Slack's
// 2000 characters, and checked like typed input when they come back.

// maxButtonIDs bounds the result ids a button carries.
const maxButtonIDs = 24

func rerunValue(relayName string, runID int64, at time.Time, ok bool, mx string) string {
	v := url.Values{}
	v.Set("relay", relayName)
	if runID > 0 {
		v.Set("run", strconv.FormatInt(runID, 10))
		v.Set("at", strconv.FormatInt(at.Unix(), 10))
		if ok {
			v.Set("ok", "1")
		} else {
			v.Set("ok", "0")
		}
	}
	if mx != "" {
		v.Set("mx", mx)
	}
	return v.Encode()
}

func idsValue(relayName string, runID int64, ids []int64) string {
	v := url.Values{}
	v.Set("relay", relayName)
	if runID > 0 {
		v.Set("run", strconv.FormatInt(runID, 10))
	}
	if len(ids) > maxButtonIDs {
		ids = ids[:maxButtonIDs]
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	v.Set("ids", strings.Join(s, ","))
	return v.Encode()
}

// buttonValue is a decoded button value.
type buttonValue struct {
	Relay  string
	RunID  int64
	At     time.Time
	OK     bool
	HasRun bool
	MX     string
	IDs    []int64
	// Other is a Compare button's healthy relay.
	Other string
}

// ErrButton marks a button value that cannot be read.
var ErrButton = errors.New("commands: unreadable button")

func parseButtonValue(s string) (buttonValue, error) {
	var b buttonValue
	if len(s) > 2000 {
		return b, fmt.Errorf("%w: value too long", ErrButton)
	}
	v, err := url.ParseQuery(s)
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrButton, err)
	}
	b.Relay = v.Get("relay")
	if b.Relay != message.AllRelays && !ValidRelayName(b.Relay) {
		return b, fmt.Errorf("%w: bad relay name", ErrButton)
	}
	if o := v.Get("other"); o != "" {
		if !ValidRelayName(o) {
			return b, fmt.Errorf("%w: bad relay name", ErrButton)
		}
		b.Other = o
	}
	if r := v.Get("run"); r != "" {
		id, err := strconv.ParseInt(r, 10, 64)
		if err != nil || id <= 0 {
			return b, fmt.Errorf("%w: bad run id", ErrButton)
		}
		b.RunID, b.HasRun = id, true
	}
	if a := v.Get("at"); a != "" {
		sec, err := strconv.ParseInt(a, 10, 64)
		if err != nil || sec < 0 || sec > 1<<40 {
			return b, fmt.Errorf("%w: bad time", ErrButton)
		}
		b.At = time.Unix(sec, 0)
	}
	b.OK = v.Get("ok") == "1"
	if mx := v.Get("mx"); mx != "" {
		if !mxArgRE().MatchString(mx) {
			return b, fmt.Errorf("%w: bad mx", ErrButton)
		}
		b.MX = mx
	}
	if ids := v.Get("ids"); ids != "" {
		for _, f := range strings.Split(ids, ",") {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil || id <= 0 {
				return b, fmt.Errorf("%w: bad result id", ErrButton)
			}
			b.IDs = append(b.IDs, id)
			if len(b.IDs) > maxButtonIDs {
				return b, fmt.Errorf("%w: too many result ids", ErrButton)
			}
		}
	}
	return b, nil
}

// buttonAccess is the access rule of a button: the verb whose rules apply,
// and whether only admins may press it (acknowledging and muting alerts,
// as [access] admins says). ok is false for an unknown button.
func buttonAccess(action string) (v Verb, adminOnly, ok bool) {
	switch action {
	case message.ActionRerun:
		return VerbCheck, false, true
	case message.ActionTranscript, message.ActionEvidence:
		return VerbEvidence, false, true
	case message.ActionCompare:
		return VerbCompare, false, true
	case message.ActionAcknowledge, message.ActionMute:
		return VerbStatus, true, true
	}
	return "", false, false
}

// authorizeButton applies a button's access rule; the error wraps
// ErrRefused like Authorize's.
func authorizeButton(a config.Access, req message.Request) error {
	v, adminOnly, _ := buttonAccess(req.Action)
	if err := Authorize(a, req, v); err != nil {
		return err
	}
	if adminOnly && !req.Local() && !matchUser(a.Admins, req) {
		return fmt.Errorf("%w: acknowledging and muting alerts is for gmailtls admins only ([access] admins); ask one of them to press it", ErrRefused)
	}
	return nil
}

// alertButton reports whether action is one of the alerts' buttons.
func alertButton(action string) bool {
	return action == message.ActionAcknowledge || action == message.ActionMute
}

// readButton is read for a button: known, allowed, its value readable,
// and for Re-run the check prepared.
func (h *Handler) readButton(ctx context.Context, c *call) (message.Response, bool) {
	req := c.req
	if _, _, ok := buttonAccess(req.Action); !ok {
		h.audit(ctx, req, "error: unknown button")
		return unknownButton(c.prefix(), req.Action), false
	}
	if err := authorizeButton(c.snap.Config.Access, req); err != nil {
		h.audit(ctx, req, "refused: "+refusalReason(err))
		return refused(err), false
	}
	if alertButton(req.Action) {
		return message.Response{Summary: "working on it", Ephemeral: true}, true
	}
	b, err := parseButtonValue(req.Value)
	if err != nil {
		h.audit(ctx, req, "error: "+err.Error())
		return ErrorResponse(c.prefix(), errors.New("that button could not be read; run the command again")), false
	}
	c.button = b
	if req.Action == message.ActionRerun {
		if err := h.prepareCheck(c, b.Relay, b.MX); err != nil {
			h.audit(ctx, req, "error: "+err.Error())
			return ErrorResponse(c.prefix(), err), false
		}
		ack := checkAck(c)
		ack.Title = "re-" + ack.Title
		ack.Summary = ack.Title
		ack.Ephemeral = true
		return ack, true
	}
	return message.Response{Title: "gmailtls: looking it up…", Verdict: message.VerdictInfo, Summary: "looking it up…", Ephemeral: true}, true
}

func unknownButton(prefix, action string) message.Response {
	return ErrorResponse(prefix, fmt.Errorf("gmailtls does not know the button %q", clip(action)))
}

// runButton runs a button that readButton let through.
func (h *Handler) runButton(ctx context.Context, c *call) message.Response {
	req := c.req
	if alertButton(req.Action) {
		return h.pressAlertButton(ctx, c)
	}
	var resp message.Response
	var err error
	switch req.Action {
	case message.ActionRerun:
		resp, err = h.rerun(ctx, c)
	case message.ActionTranscript:
		resp, err = h.transcriptResponse(ctx, c.button)
	case message.ActionEvidence:
		resp, err = h.evidenceResponse(ctx, c.snap, c.button)
	case message.ActionCompare:
		resp, err = h.compareResponse(ctx, c.snap, c.button)
	}
	if err != nil {
		h.log.Warn("commands: button failed", "action", req.Action, "user", req.Requester(), "err", err)
		h.audit(ctx, req, "error: "+err.Error())
		return ErrorResponse(c.prefix(), err)
	}
	h.audit(ctx, req, "ok")
	return resp
}

// errNoAlerts answers alert buttons when no alerter runs.
var errNoAlerts = errors.New("alerts are not configured: set [alerts] channel")

// pressAlertButton runs an alert's Acknowledge or Mute button.
func (h *Handler) pressAlertButton(ctx context.Context, c *call) message.Response {
	req := c.req
	id, err := strconv.ParseInt(strings.TrimSpace(req.Value), 10, 64)
	if err != nil || id <= 0 {
		h.audit(ctx, req, fmt.Sprintf("error: %v: %q is not an incident number", ErrButton, req.Value))
		return note("That button could not be read; use the buttons of the latest alert.")
	}
	if h.alerts == nil {
		h.audit(ctx, req, "error: "+errNoAlerts.Error())
		return ErrorResponse(c.prefix(), errNoAlerts)
	}
	var resp message.Response
	if req.Action == message.ActionAcknowledge {
		resp, err = h.alerts.Acknowledge(ctx, id, req.UserID)
	} else {
		resp, err = h.alerts.Mute(ctx, id, req.UserID, 0) // the alerter's own duration, as the button says
	}
	outcome := "ok"
	if err != nil {
		outcome = "error: " + err.Error()
		h.log.Warn("commands: alert button failed", "action", req.Action, "incident", id, "user", req.UserID, "err", err)
	}
	h.audit(ctx, req, outcome)
	return resp
}

// note is a short ephemeral answer.
func note(text string) message.Response {
	return message.Response{Title: text, Summary: text, Verdict: message.VerdictInfo, Ephemeral: true}
}

func (h *Handler) rerun(ctx context.Context, c *call) (message.Response, error) {
	b := c.button
	var prev *previousRun
	if b.HasRun {
		prev = &previousRun{RunID: b.RunID, At: b.At, OK: b.OK}
	}
	c.check.OnResult = progressOf(ctx)
	if b.Relay == message.AllRelays {
		all, err := h.svc.CheckAll(ctx, c.check)
		if err != nil && !anyNotStored(all) {
			return message.Response{}, err
		}
		r := notStoredResponse(h.checkAllResponse(c.snap, all, b.MX), all)
		r.ReplaceOriginal = true
		return r, nil
	}
	res, err := h.svc.CheckRelay(ctx, c.check)
	if err != nil && res.NotStored == nil {
		return message.Response{}, err
	}
	r := notStoredResponse(h.checkResponse(c.snap, res, prev), []monitor.CheckResult{res})
	h.withCompare(ctx, c.snap, &r, res)
	// A Re-run on a check result replaces it ("failed 12:03 → passed
	// 12:05"); one on an alert (no previous run in the value) leaves the
	// alert standing and answers beside it.
	r.ReplaceOriginal = b.HasRun
	return r, nil
}
