package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// Deps is what a Handler needs. Config, Store and Runners are required.
type Deps struct {
	Config *config.Config
	Store  *storage.Store
	// Runners probe from each configured relay, by relay name.
	Runners map[string]relay.Runner
	// Policy turns history into levels; the zero value means the policy
	// from Config's [escalation] section.
	Policy escalation.Policy
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives operational logs (default: discarded).
	Logger *slog.Logger
	// OnChange, when set, is called after every evaluation that changed a
	// level, with the changes (already stored as events). The alert code
	// hooks in here. It runs synchronously in the caller of CheckRelay,
	// CheckAll or Evaluate, outside the evaluation lock: it may check a
	// relay again (a confirming re-probe).
	OnChange func(ctx context.Context, changes []escalation.Change, ev Evaluation)
	// Location is the time zone times are shown in (default time.Local).
	Location *time.Location
	// Hostname names this host in evidence for local relays (default
	// os.Hostname).
	Hostname func() (string, error)
	// Concurrency bounds the relays probed at once by CheckAll ("check
	// all" and the scheduler's rounds; default 32). With five MX hosts per
	// relay that keeps up to 160 probes in flight: a round over 200 relays
	// whose servers answer after 100 ms takes about a second
	// (BenchmarkScheduledRound).
	Concurrency int
}

// Handler runs /gmailtls commands: it parses, authorizes, audits, runs the
// command against storage and the relays, and answers with a Response. It
// satisfies the bot's Handler interface, serves the console, and exports
// the service the scheduler and the CLI use (CheckRelay, CheckAll,
// Evaluate, Status, Summary). It is safe for concurrent use.
type Handler struct {
	store       *storage.Store
	now         func() time.Time
	log         *slog.Logger
	onChange    func(ctx context.Context, changes []escalation.Change, ev Evaluation)
	loc         *time.Location
	hostname    func() (string, error)
	concurrency int
	fixedPolicy bool

	mu      sync.RWMutex // guards cfg, runners, policy
	cfg     *config.Config
	runners map[string]relay.Runner
	policy  escalation.Policy

	// evalMu serializes evaluations, so that a change is stored once, and
	// guards state, the escalation state carried between evaluations (nil
	// until the first one, which replays the stored history).
	evalMu sync.Mutex
	state  *escalation.Assessment
	recent recentCache
}

// maxQueueSamples bounds the stored queue samples per relay that
// escalation reads.
const maxQueueSamples = 24

// New returns a Handler over deps.
func New(deps Deps) *Handler {
	h := &Handler{
		store:       deps.Store,
		now:         deps.Now,
		log:         deps.Logger,
		onChange:    deps.OnChange,
		loc:         deps.Location,
		hostname:    deps.Hostname,
		concurrency: deps.Concurrency,
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
	if h.hostname == nil {
		h.hostname = os.Hostname
	}
	if h.concurrency <= 0 {
		h.concurrency = 32
	}
	h.fixedPolicy = deps.Policy != (escalation.Policy{})
	h.policy = deps.Policy
	h.Reload(deps.Config, deps.Runners)
	return h
}

// Reload swaps the configuration and the relays (after SIGHUP). History,
// queue samples and announced levels are kept.
func (h *Handler) Reload(cfg *config.Config, runners map[string]relay.Runner) {
	if cfg == nil {
		cfg = config.Default()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cfg = cfg
	h.runners = runners
	if !h.fixedPolicy {
		h.policy = PolicyFromConfig(cfg.Escalation)
	}
}

// PolicyFromConfig builds the escalation policy from the [escalation]
// section; zero values keep the engine's defaults.
func PolicyFromConfig(e config.Escalation) escalation.Policy {
	p := escalation.DefaultPolicy()
	if e.Consecutive > 0 {
		p.Consecutive = e.Consecutive
	}
	if len(e.MOfK) == 2 && e.MOfK[0] > 0 && e.MOfK[1] >= e.MOfK[0] {
		p.M, p.K = e.MOfK[0], e.MOfK[1]
	}
	if e.Window.Duration > 0 {
		p.Window = e.Window.Duration
	}
	if e.WindowCount > 0 {
		p.WindowCount = e.WindowCount
	}
	if e.RecoverAfter > 0 {
		p.RecoverAfter = e.RecoverAfter
	}
	return p
}

// snapshot returns the current configuration, relays and policy.
func (h *Handler) snapshot() (*config.Config, map[string]relay.Runner, escalation.Policy) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cfg, h.runners, h.policy
}

// commandName is the slash command as users type it.
func (h *Handler) commandName() string {
	cfg, _, _ := h.snapshot()
	if cfg.Slack.Command != "" {
		return cfg.Slack.Command
	}
	return "/gmailtls"
}

// relayNames lists the configured relays, sorted.
func (h *Handler) relayNames() []string {
	_, runners, _ := h.snapshot()
	names := make([]string, 0, len(runners))
	for n := range runners {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrUnknownRelay marks a relay name that is not configured.
var ErrUnknownRelay = errors.New("commands: unknown relay")

// ErrTarget marks an --mx host that is not part of the configured target.
var ErrTarget = errors.New("commands: not a configured target")

// runner returns the relay's runner or an error that names the relays.
func (h *Handler) runner(name string) (relay.Runner, error) {
	_, runners, _ := h.snapshot()
	if r, ok := runners[name]; ok && r != nil {
		return r, nil
	}
	return nil, h.unknownRelay(name)
}

func (h *Handler) unknownRelay(name string) error {
	names := h.relayNames()
	if len(names) == 0 {
		return fmt.Errorf("%w: %q: no relays are configured; add a [[relay]] block to the configuration", ErrUnknownRelay, name)
	}
	return fmt.Errorf("%w: there is no relay %q; the relays are %s", ErrUnknownRelay, name, strings.Join(names, ", "))
}

// knownRelay reports whether name is configured or in the stored history
// (retired relays keep their history and can be looked at).
func (h *Handler) checkRelayName(ctx context.Context, name string, allowRetired bool) error {
	if _, err := h.runner(name); err == nil {
		return nil
	}
	if allowRetired {
		rels, err := h.store.Relays(ctx, true)
		if err == nil {
			for _, r := range rels {
				if r.Name == name {
					return nil
				}
			}
		}
	}
	return h.unknownRelay(name)
}

// Acknowledge answers a request at once, without waiting on the network or
// the database: syntax errors, refusals and help are answered in full
// (more=false); everything else gets a short acknowledgement and more=true,
// and the caller then calls Run in the background.
func (h *Handler) Acknowledge(ctx context.Context, req message.Request) (ack message.Response, more bool) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("commands: panic while acknowledging a command", "panic", p, "stack", string(debug.Stack()))
			ack, more = internalError(), false
		}
	}()
	if req.Action != "" {
		return h.acknowledgeButton(ctx, req)
	}
	cmd, err := Parse(req.Text)
	if err != nil {
		h.audit(ctx, req, "syntax error: "+err.Error())
		return ErrorResponse(h.commandName(), err), false
	}
	cfg, _, _ := h.snapshot()
	if err := Authorize(cfg.Access, req, cmd.Verb); err != nil {
		h.audit(ctx, req, "refused: "+refusalReason(err))
		return refused(err), false
	}
	switch cmd.Verb {
	case VerbHelp:
		h.audit(ctx, req, "ok")
		return HelpResponse(h.commandName(), cmd.Topic), false
	case VerbCheck:
		if err := h.validateCheck(cmd); err != nil {
			h.audit(ctx, req, "error: "+err.Error())
			return ErrorResponse(h.commandName(), err), false
		}
		return h.checkAck(cmd), true
	case VerbPause, VerbResume:
		if _, err := h.runner(cmd.Relay); err != nil {
			h.audit(ctx, req, "error: "+err.Error())
			return ErrorResponse(h.commandName(), err), false
		}
	case VerbHistory, VerbEvidence:
		// Retired relays keep their history; only a name never seen is
		// refused here, so that it gets one answer, not an ack and then
		// an error.
		if err := h.checkRelayName(ctx, cmd.Relay, true); err != nil {
			h.audit(ctx, req, "error: "+err.Error())
			return ErrorResponse(h.commandName(), err), false
		}
	}
	return message.Response{
		Title:     fmt.Sprintf("gmailtls %s: working on it…", cmd.Verb),
		Verdict:   message.VerdictInfo,
		Summary:   fmt.Sprintf("gmailtls %s…", cmd.Verb),
		Ephemeral: true,
	}, true
}

// Run runs a request that Acknowledge answered with more=true (running it
// after more=false repeats the same answer). It never returns an empty
// Response: errors become an explanation.
func (h *Handler) Run(ctx context.Context, req message.Request) (resp message.Response) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("commands: panic while running a command", "text", req.Text, "action", req.Action, "panic", p, "stack", string(debug.Stack()))
			h.audit(ctx, req, "internal error")
			resp = internalError()
		}
	}()
	if req.Action != "" {
		return h.runButton(ctx, req)
	}
	cmd, err := Parse(req.Text)
	if err != nil {
		return ErrorResponse(h.commandName(), err)
	}
	cfg, _, _ := h.snapshot()
	if err := Authorize(cfg.Access, req, cmd.Verb); err != nil {
		return refused(err)
	}
	resp, err = h.runCommand(ctx, req, cmd)
	if err != nil {
		h.log.Warn("commands: command failed", "text", req.Text, "user", req.Requester(), "err", err)
		h.audit(ctx, req, "error: "+err.Error())
		return ErrorResponse(h.commandName(), err)
	}
	h.audit(ctx, req, "ok")
	return resp
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

func (h *Handler) runCommand(ctx context.Context, req message.Request, cmd Command) (message.Response, error) {
	switch cmd.Verb {
	case VerbHelp:
		return HelpResponse(h.commandName(), cmd.Topic), nil
	case VerbCheck:
		if err := h.validateCheck(cmd); err != nil {
			return message.Response{}, err
		}
		opts := relay.Options{}
		if cmd.MX != "" {
			opts.MX = []string{cmd.MX}
		}
		if cmd.Relay == message.AllRelays {
			all, err := h.CheckAll(ctx, triggerOf(req), req.Requester(), opts, false)
			if err != nil {
				return message.Response{}, err
			}
			return h.CheckAllResponse(all, cmd.MX), nil
		}
		res, err := h.CheckRelay(ctx, cmd.Relay, triggerOf(req), req.Requester(), opts)
		if err != nil {
			return message.Response{}, err
		}
		return h.CheckResponse(res, nil), nil
	case VerbStatus:
		m, err := h.Status(ctx)
		if err != nil {
			return message.Response{}, err
		}
		return h.StatusResponse(m), nil
	case VerbHistory:
		if err := h.checkRelayName(ctx, cmd.Relay, true); err != nil {
			return message.Response{}, err
		}
		return h.historyResponse(ctx, cmd.Relay, cmd.Window)
	case VerbRelays:
		m, err := h.Relays(ctx)
		if err != nil {
			return message.Response{}, err
		}
		return h.RelaysResponse(m), nil
	case VerbEvidence:
		if err := h.checkRelayName(ctx, cmd.Relay, true); err != nil {
			return message.Response{}, err
		}
		return h.evidenceForRelay(ctx, cmd.Relay)
	case VerbReport:
		m, err := h.Summary(ctx, cmd.Window)
		if err != nil {
			return message.Response{}, err
		}
		return h.SummaryResponse(m), nil
	case VerbPause:
		return h.pause(ctx, req, cmd)
	case VerbResume:
		return h.resume(ctx, req, cmd)
	}
	return message.Response{}, fmt.Errorf("commands: %q is not handled", cmd.Verb)
}

// triggerOf maps a request's source to the trigger recorded on a run.
func triggerOf(req message.Request) message.Source {
	if req.Source == "" {
		return message.SourceCLI
	}
	return req.Source
}

func (h *Handler) pause(ctx context.Context, req message.Request, cmd Command) (message.Response, error) {
	if _, err := h.runner(cmd.Relay); err != nil {
		return message.Response{}, err
	}
	until := h.now().Add(cmd.Duration)
	if err := h.store.PauseRelay(ctx, cmd.Relay, until, req.Who()); err != nil {
		return message.Response{}, fmt.Errorf("pause %s: %w", cmd.Relay, err)
	}
	h.log.Info("relay paused", "relay", cmd.Relay, "until", until, "by", req.Who())
	return message.Response{
		Title:   fmt.Sprintf("%s paused until %s by %s", cmd.Relay, h.clock(until), req.Who()),
		Verdict: message.VerdictInfo,
		Summary: fmt.Sprintf("%s paused for %s", cmd.Relay, FormatWindow(cmd.Duration)),
		Sections: []message.Section{{Lines: []string{
			"Scheduled probing skips it until then; `check " + cmd.Relay + "` still works.",
			fmt.Sprintf("Resume earlier with `%s resume %s`.", h.commandName(), cmd.Relay),
		}}},
	}, nil
}

func (h *Handler) resume(ctx context.Context, req message.Request, cmd Command) (message.Response, error) {
	if _, err := h.runner(cmd.Relay); err != nil {
		return message.Response{}, err
	}
	if err := h.store.ResumeRelay(ctx, cmd.Relay, req.Who()); err != nil {
		return message.Response{}, fmt.Errorf("resume %s: %w", cmd.Relay, err)
	}
	h.log.Info("relay resumed", "relay", cmd.Relay, "by", req.Who())
	return message.Response{
		Title:    fmt.Sprintf("%s resumed by %s", cmd.Relay, req.Who()),
		Verdict:  message.VerdictInfo,
		Summary:  cmd.Relay + " resumed",
		Sections: []message.Section{{Lines: []string{"Scheduled probing includes it again from the next round."}}},
	}, nil
}

// auditTimeout bounds one audit log write.
const auditTimeout = time.Second

// audit writes the request to the audit log; a failure is logged, never
// shown: the command itself went through.
func (h *Handler) audit(ctx context.Context, req message.Request, outcome string) {
	text := req.Text
	if req.Action != "" {
		text = strings.TrimSpace("button " + req.Action + " " + req.Value)
	}
	if len(outcome) > 500 {
		outcome = clipBytes(outcome, 500)
	}
	// Bounded: Acknowledge audits too, and Slack waits 3 s for the ack.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	err := h.store.Audit(ctx, storage.AuditEntry{
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

// validateCheck makes sure a check names a configured relay and, with
// --mx, one of the configured target's MX hosts: no command can aim
// gmailtls at another host or port.
func (h *Handler) validateCheck(cmd Command) error {
	if cmd.Relay != message.AllRelays {
		if _, err := h.runner(cmd.Relay); err != nil {
			return err
		}
	} else if len(h.relayNames()) == 0 {
		return fmt.Errorf("%w: no relays are configured; add a [[relay]] block to the configuration", ErrUnknownRelay)
	}
	if cmd.MX == "" {
		return nil
	}
	_, err := h.resolveMX(cmd.MX)
	return err
}

// wellKnownGmailMX is Gmail's MX set (DESIGN.md), used to check --mx
// without a DNS lookup when the target is gmail.com.
var wellKnownGmailMX = [...]string{
	"gmail-smtp-in.l.google.com",
	"alt1.gmail-smtp-in.l.google.com",
	"alt2.gmail-smtp-in.l.google.com",
	"alt3.gmail-smtp-in.l.google.com",
	"alt4.gmail-smtp-in.l.google.com",
}

// resolveMX maps an --mx argument to the configured target entry it names.
// With a pinned list it must be one of its entries (or an entry's host);
// with gmail.com from DNS it must be one of Gmail's MX names; for other
// domains it must be a plain host name under which the relay itself checks
// the domain's MX set. Ports and addresses are never accepted unless they
// are pinned.
func (h *Handler) resolveMX(arg string) (string, error) {
	cfg, _, _ := h.snapshot()
	arg = strings.ToLower(strings.TrimSuffix(arg, "."))
	if len(cfg.Target.MX) > 0 {
		var hosts []string
		for _, entry := range cfg.Target.MX {
			e := strings.ToLower(entry)
			host := e
			if hh, _, err := net.SplitHostPort(e); err == nil {
				host = hh
			}
			if arg == e || arg == host || arg == "["+host+"]" {
				return entry, nil
			}
			hosts = append(hosts, entry)
		}
		return "", fmt.Errorf("%w: %q is not one of the pinned MX hosts (%s); gmailtls only probes its configured target", ErrTarget, arg, strings.Join(hosts, ", "))
	}
	domain := strings.ToLower(cfg.Target.Domain)
	if domain == "" || domain == "gmail.com" {
		if slices.Contains(wellKnownGmailMX[:], arg) {
			return arg, nil
		}
		return "", fmt.Errorf("%w: %q is not one of Gmail's MX hosts (%s); gmailtls only probes its configured target", ErrTarget, arg, strings.Join(wellKnownGmailMX[:], ", "))
	}
	if strings.ContainsAny(arg, ":[]") || net.ParseIP(arg) != nil {
		return "", fmt.Errorf("%w: %q is an address; --mx takes one of %s's MX host names", ErrTarget, arg, domain)
	}
	return arg, nil
}

// targetLabel names the target in titles: "Gmail" for gmail.com.
func (h *Handler) targetLabel() string {
	cfg, _, _ := h.snapshot()
	switch d := strings.ToLower(cfg.Target.Domain); d {
	case "", "gmail.com", "googlemail.com":
		return "Gmail"
	default:
		return d
	}
}

// checkAck is the immediate answer to check.
func (h *Handler) checkAck(cmd Command) message.Response {
	cfg, _, _ := h.snapshot()
	var dest string
	switch {
	case cmd.MX != "":
		dest = cmd.MX
	case len(cfg.Target.MX) > 0:
		dest = fmt.Sprintf("%d %s MX hosts", len(cfg.Target.MX), h.targetLabel())
		if len(cfg.Target.MX) == 1 {
			dest = fmt.Sprintf("1 %s MX host", h.targetLabel())
		}
	default:
		domain := cfg.Target.Domain
		if domain == "" {
			domain = "gmail.com"
		}
		dest = fmt.Sprintf("the %s MX hosts of %s", h.targetLabel(), domain)
	}
	who := cmd.Relay
	if cmd.Relay == message.AllRelays {
		n := len(h.relayNames())
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

// buttonVerb is the verb whose access rules apply to a button.
func buttonVerb(action string) (Verb, bool) {
	switch action {
	case message.ActionRerun:
		return VerbCheck, true
	case message.ActionTranscript, message.ActionEvidence:
		return VerbEvidence, true
	}
	return "", false
}

func (h *Handler) acknowledgeButton(ctx context.Context, req message.Request) (message.Response, bool) {
	verb, ok := buttonVerb(req.Action)
	if !ok {
		h.audit(ctx, req, "error: unknown button")
		return unknownButton(req.Action), false
	}
	cfg, _, _ := h.snapshot()
	if err := Authorize(cfg.Access, req, verb); err != nil {
		h.audit(ctx, req, "refused: "+refusalReason(err))
		return refused(err), false
	}
	b, err := parseButtonValue(req.Value)
	if err != nil {
		h.audit(ctx, req, "error: "+err.Error())
		return ErrorResponse(h.commandName(), errors.New("that button could not be read; run the command again")), false
	}
	if req.Action == message.ActionRerun {
		cmd := Command{Verb: VerbCheck, Relay: b.Relay, MX: b.MX}
		if err := h.validateCheck(cmd); err != nil {
			h.audit(ctx, req, "error: "+err.Error())
			return ErrorResponse(h.commandName(), err), false
		}
		ack := h.checkAck(cmd)
		ack.Title = "re-" + ack.Title
		ack.Summary = ack.Title
		ack.Ephemeral = true
		return ack, true
	}
	return message.Response{Title: "gmailtls: looking it up…", Verdict: message.VerdictInfo, Summary: "looking it up…", Ephemeral: true}, true
}

func unknownButton(action string) message.Response {
	return ErrorResponse("", fmt.Errorf("gmailtls does not know the button %q", clip(action)))
}

func (h *Handler) runButton(ctx context.Context, req message.Request) message.Response {
	verb, ok := buttonVerb(req.Action)
	if !ok {
		return unknownButton(req.Action)
	}
	cfg, _, _ := h.snapshot()
	if err := Authorize(cfg.Access, req, verb); err != nil {
		return refused(err)
	}
	b, err := parseButtonValue(req.Value)
	if err != nil {
		return ErrorResponse(h.commandName(), errors.New("that button could not be read; run the command again"))
	}
	var resp message.Response
	switch req.Action {
	case message.ActionRerun:
		resp, err = h.rerun(ctx, req, b)
	case message.ActionTranscript:
		resp, err = h.transcriptResponse(ctx, b)
	case message.ActionEvidence:
		resp, err = h.evidenceResponse(ctx, b)
	}
	if err != nil {
		h.log.Warn("commands: button failed", "action", req.Action, "user", req.Requester(), "err", err)
		h.audit(ctx, req, "error: "+err.Error())
		r := ErrorResponse(h.commandName(), err)
		return r
	}
	h.audit(ctx, req, "ok")
	return resp
}

func (h *Handler) rerun(ctx context.Context, req message.Request, b buttonValue) (message.Response, error) {
	cmd := Command{Verb: VerbCheck, Relay: b.Relay, MX: b.MX}
	if err := h.validateCheck(cmd); err != nil {
		return message.Response{}, err
	}
	opts := relay.Options{}
	if b.MX != "" {
		opts.MX = []string{b.MX}
	}
	var prev *previousRun
	if b.HasRun {
		prev = &previousRun{RunID: b.RunID, At: b.At, OK: b.OK}
	}
	if b.Relay == message.AllRelays {
		all, err := h.CheckAll(ctx, triggerOf(req), req.Requester(), opts, false)
		if err != nil {
			return message.Response{}, err
		}
		r := h.CheckAllResponse(all, b.MX)
		r.ReplaceOriginal = true
		return r, nil
	}
	res, err := h.CheckRelay(ctx, b.Relay, triggerOf(req), req.Requester(), opts)
	if err != nil {
		return message.Response{}, err
	}
	r := h.CheckResponse(res, prev)
	// A Re-run on a check result replaces it ("failed 12:03 → passed
	// 12:05"); one on an alert (no previous run in the value) leaves the
	// alert standing and answers beside it.
	r.ReplaceOriginal = b.HasRun
	return r, nil
}
