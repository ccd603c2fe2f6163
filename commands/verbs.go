package commands

import (
	"context"
	"flag"
	"time"

	"github.com/gmailtls/gmailtls/message"
)

// verbSpec is one verb of the table: its name, its arguments, who may run
// it, its help and its handler. The grammar (Parse and Command.String),
// help, the handler (Acknowledge and Run, for Slack and the console) and
// the CLI twins all read the table; a verb is added here and nowhere else.
type verbSpec struct {
	verb Verb
	// usage is the one-line syntax, e.g. "check <relay|all> [--mx host]".
	usage string
	// args are the positional arguments, in order.
	args []argSpec
	// mx: the verb takes the option --mx host, anywhere after the verb.
	mx bool
	// admin: only admins may run the verb.
	admin bool
	// explain is the one-line description help shows; detail the longer
	// help of "help <verb>".
	explain string
	detail  []string
	// prepare checks the parsed command against the request's snapshot of
	// the configuration when it is read, before it is acknowledged (nil:
	// nothing to check); what it prepares is kept on the call for run.
	prepare func(h *Handler, ctx context.Context, c *call) error
	// ack is the immediate answer while run works (nil: "working on it").
	ack func(c *call) message.Response
	// instant verbs touch neither the network nor the database: Acknowledge
	// answers them in full.
	instant bool
	// run executes the command that was read.
	run func(h *Handler, ctx context.Context, c *call) (Reply, error)
	// cli: the verb has a CLI twin, `gmailtls <verb>` (help has the
	// program's own help instead).
	cli bool
	// relayOptional: on the command line the relay may be left out, for
	// every relay.
	relayOptional bool
	// flags registers the twin's own flags, which set fields of the
	// command the grammar has no words for.
	flags func(fs *flag.FlagSet, cmd *Command)
	// cliNote is help for the twin only.
	cliNote []string
	// writes: the verb stores something (a run, a pause); asksRelays: it
	// talks to the relays (probes, or asks an agent for its host and
	// queue). The others only read the database.
	writes, asksRelays bool
}

// argKind is what a positional argument holds.
type argKind int

// The kinds of positional arguments.
const (
	// argRelay is a relay name, required.
	argRelay argKind = iota + 1
	// argRelayOrAll is a relay name or "all", required.
	argRelayOrAll
	// argWindow is an optional duration, Command.Window.
	argWindow
	// argDuration is an optional duration, Command.Duration.
	argDuration
	// argTopic is an optional verb, Command.Topic.
	argTopic
	// argOtherRelay is a second relay name, required, Command.Other.
	argOtherRelay
)

// argSpec is one positional argument.
type argSpec struct {
	kind argKind
	// def and limit are a duration's default and upper bound.
	def, limit time.Duration
	// flag, when set, is a CLI flag that may give the argument instead of
	// its position (history --relay NAME --since 24h).
	flag string
}

// relayArgs is the single relay argument of most verbs.
var relayArgs = []argSpec{{kind: argRelay, flag: "relay"}}

// verbTable lists every verb in the order help shows them. It is filled in
// init: its handlers read it back (help lists the verbs).
var verbTable []verbSpec

func init() {
	verbTable = []verbSpec{
		{
			verb: VerbCheck, usage: "check <relay|all> [--mx host]",
			args: []argSpec{{kind: argRelayOrAll, flag: "relay"}}, mx: true,
			explain: "probe STARTTLS from a relay (or all relays) to the target's MX hosts now",
			detail: []string{
				"Runs a real STARTTLS probe from the relay toward every MX host of the configured target,",
				"per IP address and per source IP, and shows which stage failed and how.",
				"`--mx host` narrows the probe to one of the configured MX hosts; no command can aim",
				"gmailtls at any other host or port.",
				"Examples: `check relay-2` · `check all` · `check relay-2 --mx alt1.gmail-smtp-in.l.google.com`",
			},
			prepare: func(h *Handler, _ context.Context, c *call) error { return h.prepareCheck(c, c.cmd.Relay, c.cmd.MX) },
			ack:     checkAck,
			run:     (*Handler).runCheck,
			cli:     true, writes: true, asksRelays: true,
		},
		{
			verb: VerbStatus, usage: "status",
			explain: "escalation level of every relay and across relays",
			run:     (*Handler).runStatus,
			cli:     true,
		},
		{
			verb: VerbHistory, usage: "history <relay> [24h|7d]",
			args:    []argSpec{{kind: argRelay, flag: "relay"}, {kind: argWindow, def: DefaultHistoryWindow, limit: MaxWindow, flag: "since"}},
			explain: "stored probe results of a relay, newest first (default 24h)",
			detail: []string{
				"The window is a duration: 30m, 24h, 7d, 1d12h.",
				"Example: `history relay-2 7d`",
			},
			prepare: (*Handler).prepareLookup,
			run:     (*Handler).runHistory,
			cli:     true, relayOptional: true,
			flags: func(fs *flag.FlagSet, cmd *Command) {
				fs.IntVar(&cmd.Limit, "limit", 0, "print at most `N` results (0: all)")
				fs.BoolVar(&cmd.FailuresOnly, "failures", false, "only failed probes")
			},
			cliNote: []string{
				"Without a relay, every relay's results. The text is one line per result, with the",
				"failure class and the stage where a probe stopped; --json adds every field of the",
				"result, with the transcripts storage keeps (failures, and the newest success per relay",
				"and MX host).",
			},
		},
		{
			verb: VerbRelays, usage: "relays",
			explain: "configured relays: kind, source IPs, paused, retired",
			run:     (*Handler).runRelays,
			cli:     true,
		},
		{
			verb: VerbEvidence, usage: "evidence <relay>", args: relayArgs,
			explain: "full evidence of a relay's latest failing probe",
			prepare: (*Handler).prepareLookup,
			run:     (*Handler).runEvidence,
			cli:     true, asksRelays: true,
		},
		{
			verb: VerbCompare, usage: "compare <relay> <relay>",
			args:    []argSpec{{kind: argRelay}, {kind: argOtherRelay}},
			explain: "a failing relay beside a working one, differences first",
			detail: []string{
				"Outbound IPs, MTA and TLS library versions, CA bundle, TLS policy and transport toward",
				"Gmail, the latest result per MX address, the mail log's failure counts and the queue,",
				"asked of both relays now: the fields that differ, then those that are the same.",
				"Example: `compare relay-2 relay-1`",
			},
			prepare: (*Handler).prepareCompare,
			run:     (*Handler).runCompare,
			cli:     true, asksRelays: true,
		},
		{
			verb: VerbReport, usage: "report [24h|7d]",
			args:    []argSpec{{kind: argWindow, def: DefaultReportWindow, limit: MaxWindow}},
			explain: "health summary: success rate, failures by class, hourly trend",
			detail: []string{
				"Per relay: level, success rate, failures by class, median handshake time, last failure,",
				"open incidents and a trend with one character per hour (▁ all passed … █ all failed).",
			},
			run: (*Handler).runReport,
			cli: true,
		},
		{
			verb: VerbHelp, usage: "help [command]",
			args:    []argSpec{{kind: argTopic}},
			explain: "this help",
			instant: true,
			run:     (*Handler).runHelp,
		},
		{
			verb: VerbPause, usage: "pause <relay> [1h|2d]", admin: true,
			args:    []argSpec{{kind: argRelay, flag: "relay"}, {kind: argDuration, def: DefaultPause, limit: MaxPause}},
			explain: "stop scheduled probing of a relay for a while (admins, default 1h)",
			detail: []string{
				"A paused relay is skipped by scheduled probing until the pause ends; `check` still works.",
				"Example: `pause relay-2 2h`",
			},
			prepare: (*Handler).prepareConfigured,
			run:     (*Handler).pause,
			cli:     true, writes: true,
		},
		{
			verb: VerbResume, usage: "resume <relay>", admin: true, args: relayArgs,
			explain: "resume scheduled probing of a paused relay (admins)",
			prepare: (*Handler).prepareConfigured,
			run:     (*Handler).resume,
			cli:     true, writes: true,
		},
	}
	Verbs = make([]Verb, len(verbTable))
	for i, s := range verbTable {
		Verbs[i] = s.verb
	}
}

// lookupVerb returns the table entry of v, or nil.
func lookupVerb(v Verb) *verbSpec {
	for i := range verbTable {
		if verbTable[i].verb == v {
			return &verbTable[i]
		}
	}
	return nil
}

// Reply is a verb's whole answer: the message, and for the command line
// the data behind it.
type Reply struct {
	// Response is the message shown in chat and in terminals.
	Response message.Response
	// Data is the model behind Response: what `gmailtls <verb> --json`
	// prints (nil for help).
	Data any
	// Table, when set, is what the command line prints as text instead of
	// Response: one line per item, for grep and awk (history).
	Table *Table
	// Failed: a probe failed, or could not run (exit status 1 on the
	// command line).
	Failed bool
}

// Table is rows under a header, printed as aligned columns.
type Table struct {
	Header []string
	Rows   [][]string
	// Empty is printed instead of a table without rows.
	Empty string
}

// prepareLookup accepts a relay that is configured or has stored history
// (retired relays keep theirs), so that a name never seen gets one answer,
// not an acknowledgement and then an error. An empty relay (the command
// line's history of every relay) is accepted.
func (h *Handler) prepareLookup(ctx context.Context, c *call) error {
	if c.cmd.Relay == "" {
		return nil
	}
	return h.checkRelayName(ctx, c.snap, c.cmd.Relay, true)
}

// prepareConfigured accepts a configured relay only.
func (h *Handler) prepareConfigured(_ context.Context, c *call) error {
	_, err := c.snap.Runner(c.cmd.Relay)
	return err
}

func (h *Handler) runHelp(_ context.Context, c *call) (Reply, error) {
	return Reply{Response: HelpResponse(c.prefix(), c.cmd.Topic)}, nil
}
