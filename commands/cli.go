package commands

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/terminal"
)

// CLIVerbs lists the verbs that have a CLI twin, `gmailtls <verb>`, in the
// order help shows them.
func CLIVerbs() []Verb {
	var out []Verb
	for _, s := range verbTable {
		if s.cli {
			out = append(out, s.verb)
		}
	}
	return out
}

// Explain is the verb's one-line description, as help shows it.
func (v Verb) Explain() string {
	if s := lookupVerb(v); s != nil {
		return s.explain
	}
	return ""
}

// Writes reports whether the verb stores something (a run, a pause);
// the others only read the database.
func (v Verb) Writes() bool {
	s := lookupVerb(v)
	return s != nil && s.writes
}

// AsksRelays reports whether the verb talks to the relays: it probes, or
// asks an agent for its host facts and queue.
func (v Verb) AsksRelays() bool {
	s := lookupVerb(v)
	return s != nil && s.asksRelays
}

// CLI is the command line of a verb's twin: `gmailtls <verb> [flags]
// [arguments]`, with the arguments of the chat command (flags and
// arguments in any order), --json, the flags that may give an argument
// instead of its position (history --relay NAME --since 24h) and the
// verb's own flags.
type CLI struct {
	// Flags are the twin's flags. The caller adds its own (--config)
	// before Parse.
	Flags *flag.FlagSet
	// JSON is --json: print the Reply's data for scripts.
	JSON bool

	spec   *verbSpec
	byFlag map[string]*string // argument flags, by name
	mx     string
	cmd    Command // the fields the verb's own flags set
}

// NewCLI returns the command line of v's twin, which reports its usage and
// errors to output; ok is false when v has no twin.
func NewCLI(v Verb, output io.Writer) (c *CLI, ok bool) {
	spec := lookupVerb(v)
	if spec == nil || !spec.cli {
		return nil, false
	}
	fs := flag.NewFlagSet(string(v), flag.ContinueOnError)
	fs.SetOutput(output)
	c = &CLI{Flags: fs, spec: spec, byFlag: map[string]*string{}}
	fs.BoolVar(&c.JSON, "json", false, "print JSON for scripts")
	for _, a := range spec.args {
		if a.flag == "" {
			continue
		}
		help := "the `relay` (instead of the argument)"
		if a.kind == argWindow || a.kind == argDuration {
			help = "how far back: a `duration` such as 90m, 24h or 7d (instead of the argument)"
		}
		c.byFlag[a.flag] = fs.String(a.flag, "", help)
	}
	if spec.mx {
		fs.StringVar(&c.mx, "mx", "", "probe only this `host`, one of the configured target's MX hosts")
	}
	if spec.flags != nil {
		spec.flags(fs, &c.cmd)
	}
	fs.Usage = c.usage
	return c, true
}

// usage writes the twin's help: its syntax, what it does, its flags.
func (c *CLI) usage() {
	w := c.Flags.Output()
	name, args, _ := strings.Cut(c.spec.usage, " ")
	fmt.Fprintf(w, "usage: gmailtls %s [flags] %s\n\n%s%s.\n", name, args, strings.ToUpper(c.spec.explain[:1]), c.spec.explain[1:])
	if more := append(append([]string(nil), c.spec.detail...), c.spec.cliNote...); len(more) > 0 {
		fmt.Fprintln(w)
		for _, l := range more {
			fmt.Fprintln(w, terminal.Plain(l))
		}
	}
	fmt.Fprintln(w, "\nExit status: 0 done, 1 a probe failed or the command could not run, 2 a usage or\nconfiguration error, 130 interrupted.\n\nFlags:")
	c.Flags.PrintDefaults()
}

// Parse reads the twin's command line into the command the grammar reads
// from the same words. Usage errors are reported to the flags' output;
// -h returns flag.ErrHelp after printing the help.
func (c *CLI) Parse(args []string) (Command, error) {
	var words []string
	for {
		if err := c.Flags.Parse(args); err != nil {
			return Command{}, err
		}
		if args = c.Flags.Args(); len(args) == 0 {
			break
		}
		words, args = append(words, args[0]), args[1:]
	}
	cmd, err := c.command(words)
	if err != nil {
		fmt.Fprintf(c.Flags.Output(), "gmailtls %s: %s\n", c.spec.verb, UserText(err))
		return Command{}, err
	}
	return cmd, nil
}

// command puts the arguments given by flag in their places and reads the
// words with the grammar.
func (c *CLI) command(words []string) (Command, error) {
	given := map[string]bool{}
	c.Flags.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var line []string
	everyRelay := false
	for _, a := range c.spec.args {
		switch {
		case a.flag != "" && given[a.flag]:
			line = append(line, *c.byFlag[a.flag])
		case len(words) > 0:
			line, words = append(line, words[0]), words[1:]
		case a.kind == argRelay && c.spec.relayOptional:
			// The grammar wants a relay; every relay is asked for.
			line, everyRelay = append(line, message.AllRelays), true
		}
	}
	line = append(line, words...)
	if c.mx != "" {
		line = append(line, "--mx="+c.mx)
	}
	cmd, err := c.spec.parse(line)
	if err != nil {
		return Command{}, err
	}
	if everyRelay {
		cmd.Relay = ""
	}
	if c.cmd.Limit < 0 {
		return Command{}, syntaxErr(c.spec.verb, "--limit must be 0 (all) or more")
	}
	cmd.Limit, cmd.FailuresOnly = c.cmd.Limit, c.cmd.FailuresOnly
	return cmd, nil
}

// The command line's exit statuses.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
	// ExitInterrupted is Ctrl-C's (128 + SIGINT).
	ExitInterrupted = 130
)

// Run executes cmd, as Parse returned it, through h for req and prints the
// reply on stdout (WriteReply; JSON with --json) or why it failed on
// stderr. It returns the exit status: ExitInterrupted when ctx ends first,
// ExitUsage for the requester's mistake (UsageError), ExitFailed when the
// command fails or its reply says so, else ExitOK.
func (c *CLI) Run(ctx context.Context, h *Handler, req message.Request, cmd Command, stdout, stderr io.Writer) int {
	v := c.spec.verb
	reply, err := h.Exec(ctx, req, cmd)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "interrupted")
		return ExitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "gmailtls %s: %s\n", v, UserText(err))
		if UsageError(err) {
			return ExitUsage
		}
		return ExitFailed
	}
	if err := WriteReply(stdout, reply, c.JSON); err != nil {
		fmt.Fprintf(stderr, "gmailtls %s: %v\n", v, err)
		return ExitFailed
	}
	if reply.Failed {
		return ExitFailed
	}
	return ExitOK
}

// UsageError reports whether err is the requester's mistake (a syntax
// error, an unknown relay, an MX host outside the target, a refusal)
// rather than a failure to run: the command line exits 2 for those.
func UsageError(err error) bool {
	for _, target := range []error{ErrSyntax, ErrUnknownRelay, ErrTarget, ErrRefused, flag.ErrHelp} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// WriteReply prints a Reply on the command line: its data as indented JSON
// with asJSON; else its table when it has one; else the message as plain
// text.
func WriteReply(w io.Writer, r Reply, asJSON bool) error {
	switch {
	case asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r.Data)
	case r.Table != nil && len(r.Table.Rows) == 0:
		_, err := fmt.Fprintln(w, r.Table.Empty)
		return err
	case r.Table != nil:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(r.Table.Header, "\t"))
		for _, row := range r.Table.Rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		return tw.Flush()
	}
	return terminal.Write(w, r.Response, terminal.Options{})
}
