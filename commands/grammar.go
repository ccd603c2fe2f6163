package commands

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/internal/editdist"
	"github.com/gmailtls/gmailtls/message"
)

// Verb names a command of the /gmailtls grammar.
type Verb string

// The verbs of the grammar. Pause and resume are for admins only.
const (
	VerbCheck    Verb = "check"
	VerbStatus   Verb = "status"
	VerbHistory  Verb = "history"
	VerbRelays   Verb = "relays"
	VerbEvidence Verb = "evidence"
	VerbCompare  Verb = "compare"
	VerbReport   Verb = "report"
	VerbHelp     Verb = "help"
	VerbPause    Verb = "pause"
	VerbResume   Verb = "resume"
)

// Verbs lists every verb in the order help shows them (the verb table's
// order).
var Verbs []Verb

// AdminOnly reports whether only admins may run the verb.
func (v Verb) AdminOnly() bool {
	s := lookupVerb(v)
	return s != nil && s.admin
}

// Usage returns the verb's one-line syntax, e.g. "check <relay|all> [--mx host]".
func (v Verb) Usage() string {
	if s := lookupVerb(v); s != nil {
		return s.usage
	}
	return string(v)
}

// Defaults and bounds of the grammar's durations.
const (
	DefaultHistoryWindow = 24 * time.Hour
	DefaultReportWindow  = 24 * time.Hour
	DefaultPause         = time.Hour
	// MaxWindow bounds history and report windows (the rollup retention).
	MaxWindow = 400 * 24 * time.Hour
	// MaxPause bounds a pause.
	MaxPause = 90 * 24 * time.Hour
	// maxInput bounds the text Parse looks at; Slack caps a slash command's
	// text well below it.
	maxInput = 4096
	// maxDays bounds the day part of a duration (100 years).
	maxDays = 36500
)

// Command is a parsed /gmailtls command.
type Command struct {
	Verb Verb
	// Relay is the relay argument ("" when the verb takes none). For check
	// it may be AllRelays.
	Relay string
	// Other is compare's second relay.
	Other string
	// MX is check's --mx host, as typed (lower-cased).
	MX string
	// Window is the history or report window.
	Window time.Duration
	// Duration is how long pause lasts.
	Duration time.Duration
	// Topic is help's optional verb.
	Topic Verb
	// Limit and FailuresOnly narrow history on the command line (gmailtls
	// history --limit N --failures); the chat grammar never sets them.
	// There, and there only, history's Relay may be empty: every relay.
	Limit        int
	FailuresOnly bool
}

// String returns the canonical text of the command, which Parse reads back
// to the same Command.
func (c Command) String() string {
	parts := []string{string(c.Verb)}
	s := lookupVerb(c.Verb)
	if s == nil {
		return parts[0]
	}
	for _, a := range s.args {
		switch a.kind {
		case argRelay, argRelayOrAll:
			if c.Relay != "" {
				parts = append(parts, c.Relay)
			}
		case argOtherRelay:
			parts = append(parts, c.Other)
		case argWindow:
			parts = append(parts, FormatWindow(c.Window))
		case argDuration:
			parts = append(parts, FormatWindow(c.Duration))
		case argTopic:
			if c.Topic != "" {
				parts = append(parts, string(c.Topic))
			}
		}
	}
	if s.mx && c.MX != "" {
		parts = append(parts, "--mx", c.MX)
	}
	return strings.Join(parts, " ")
}

// ErrSyntax marks a command that does not follow the grammar. Every parse
// error wraps it.
var ErrSyntax = errors.New("commands: syntax error")

// ParseError is a command that could not be parsed: Message says what was
// wrong and names the valid choices; Verb is the verb it concerns, if known.
type ParseError struct {
	Verb    Verb
	Message string
}

// Error returns the message.
func (e *ParseError) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrSyntax) hold.
func (e *ParseError) Unwrap() error { return ErrSyntax }

func syntaxErr(v Verb, format string, args ...any) error {
	return &ParseError{Verb: v, Message: fmt.Sprintf(format, args...)}
}

// relayNameRE is compiled at first use: its counted repetition makes a
// large program that most runs of the binary never need.
var relayNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`) })

// ValidRelayName reports whether name is a valid relay name.
func ValidRelayName(name string) bool { return relayNameRE().MatchString(name) }

// mxArgRE is the character set and length of an --mx argument; a button
// value's mx is checked with it. mxArg checks the grammar itself. It is
// compiled at first use (about 250 KB for its counted repetition).
var mxArgRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9.:\[\]_-]{1,262}$`) })

// Parse reads the text of a /gmailtls command. Empty text is help. Verbs are
// case-insensitive and relay names are folded to lower case. Parse knows
// the grammar, not the configuration: an unknown relay name is reported by
// the handler, which knows the relays.
func Parse(text string) (Command, error) {
	if len(text) > maxInput {
		return Command{}, syntaxErr("", "that command is %d bytes long; commands are short, e.g. %q", len(text), VerbCheck.Usage())
	}
	args := strings.Fields(text)
	if len(args) == 0 {
		return Command{Verb: VerbHelp}, nil
	}
	word := strings.ToLower(args[0])
	// Accept "/gmailtls check ..." pasted into the console.
	if strings.HasPrefix(word, "/") && len(args) > 1 {
		args = args[1:]
		word = strings.ToLower(args[0])
	}
	if spec := lookupVerb(Verb(word)); spec != nil {
		return spec.parse(args[1:])
	}
	msg := fmt.Sprintf("unknown command %q; the commands are %s", clip(args[0]), verbList())
	if s := suggest(word); s != "" {
		msg = fmt.Sprintf("unknown command %q: did you mean %q? The commands are %s", clip(args[0]), s, verbList())
	}
	return Command{}, &ParseError{Message: msg}
}

// parse reads the words after the verb: --mx where the verb takes it, then
// the positional arguments in the table's order.
func (s *verbSpec) parse(rest []string) (Command, error) {
	c := Command{Verb: s.verb}
	if s.mx {
		var err error
		if rest, err = parseMX(&c, rest); err != nil {
			return Command{}, err
		}
	}
	i := 0
	for _, a := range s.args {
		switch a.kind {
		case argRelay, argRelayOrAll:
			r, err := relayArg(s.verb, rest[i:], a.kind == argRelayOrAll)
			if err != nil {
				return Command{}, err
			}
			c.Relay = r
			i++
		case argOtherRelay:
			r, err := relayArg(s.verb, rest[i:], false)
			if err != nil {
				return Command{}, err
			}
			c.Other = r
			i++
		case argWindow, argDuration:
			d := a.def
			if i < len(rest) {
				var err error
				if d, err = parseWindow(s.verb, rest[i], a.limit); err != nil {
					return Command{}, err
				}
				i++
			}
			if a.kind == argWindow {
				c.Window = d
			} else {
				c.Duration = d
			}
		case argTopic:
			if i < len(rest) {
				t := Verb(strings.ToLower(rest[i]))
				if lookupVerb(t) == nil {
					return Command{}, syntaxErr(s.verb, "there is no command %q to explain; the commands are %s", clip(rest[i]), verbList())
				}
				c.Topic = t
				i++
			}
		}
	}
	if err := noMore(s.verb, rest[i:]); err != nil {
		return Command{}, err
	}
	return c, nil
}

// parseMX takes check's --mx option out of rest, wherever it is, and
// returns the other words.
func parseMX(c *Command, rest []string) ([]string, error) {
	var positional []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		la := strings.ToLower(a)
		switch {
		case la == "--mx" || la == "-mx":
			if i+1 >= len(rest) {
				return nil, syntaxErr(VerbCheck, "--mx needs a host: %s", VerbCheck.Usage())
			}
			if c.MX != "" {
				return nil, syntaxErr(VerbCheck, "--mx may be given once: %s", VerbCheck.Usage())
			}
			i++
			mx, err := mxArg(rest[i])
			if err != nil {
				return nil, err
			}
			c.MX = mx
		case strings.HasPrefix(la, "--mx=") || strings.HasPrefix(la, "-mx="):
			if c.MX != "" {
				return nil, syntaxErr(VerbCheck, "--mx may be given once: %s", VerbCheck.Usage())
			}
			mx, err := mxArg(a[strings.Index(a, "=")+1:])
			if err != nil {
				return nil, err
			}
			c.MX = mx
		case strings.HasPrefix(a, "-"):
			return nil, syntaxErr(VerbCheck, "unknown option %q; check takes only --mx: %s", clip(a), VerbCheck.Usage())
		default:
			positional = append(positional, a)
		}
	}
	return positional, nil
}

// mxArg checks check's --mx argument: host[:port] as a pinned target list
// writes it — a host name, an IP address or [IPv6], each with an optional
// port. It returns it lower-cased, without the host's trailing dot and with
// the port in plain digits, which mxArg reads back unchanged; Handler then
// checks it against the configured targets.
func mxArg(s string) (string, error) {
	h, err := hostPort(strings.ToLower(s))
	if err != nil {
		return "", syntaxErr(VerbCheck, "%q is not a mail exchanger name: %v; --mx takes one of the target's MX hosts as host[:port], e.g. gmail-smtp-in.l.google.com, 127.0.0.1:2525 or [2001:db8::1]:2525", clip(s), err)
	}
	return h, nil
}

// hostPort checks and normalizes a lower-cased host[:port].
func hostPort(s string) (string, error) {
	if net.ParseIP(s) != nil {
		return s, nil // IPv4, or IPv6 without a port
	}
	if strings.HasPrefix(s, "[") {
		inner, port, hasPort := s[1:], "", false
		end := strings.IndexByte(inner, ']')
		if end >= 0 {
			inner, port = inner[:end], inner[end+1:]
			port, hasPort = strings.CutPrefix(port, ":")
		}
		if end < 0 || (port != "" && !hasPort) || net.ParseIP(inner) == nil {
			return "", errors.New("only an IP address goes in brackets, as [2001:db8::1] or [2001:db8::1]:25")
		}
		if !hasPort {
			return "[" + inner + "]", nil
		}
		p, err := portArg(port)
		if err != nil {
			return "", err
		}
		return "[" + inner + "]:" + p, nil
	}
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort && strings.Contains(port, ":") {
		return "", errors.New("it has several colons but is not an IPv6 address (write IPv6 with a port as [2001:db8::1]:25)")
	}
	host = strings.TrimSuffix(host, ".")
	if net.ParseIP(host) == nil {
		if err := hostName(host); err != nil {
			return "", err
		}
	}
	if !hasPort {
		return host, nil
	}
	p, err := portArg(port)
	if err != nil {
		return "", err
	}
	return host + ":" + p, nil
}

// portArg checks a port written in digits and returns it without leading
// zeros.
func portArg(s string) (string, error) {
	bad := errors.New("port must be a number from 1 to 65535")
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return "", bad
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return "", bad
	}
	return strconv.Itoa(n), nil
}

// hostName checks a DNS host name (without its trailing dot): labels of
// letters, digits and hyphens, 1 to 63 long, not beginning or ending with
// a hyphen; 253 characters in all.
func hostName(s string) error {
	if len(s) > 253 {
		return errors.New("the host name is longer than 253 characters")
	}
	for _, label := range strings.Split(s, ".") {
		switch {
		case label == "":
			return errors.New("empty label (a leading dot, or two dots in a row)")
		case len(label) > 63:
			return errors.New("a label is longer than 63 characters")
		case label[0] == '-' || label[len(label)-1] == '-':
			return errors.New("labels must not begin or end with a hyphen")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not allowed in a host name (letters, digits, hyphens and dots; international names in their xn-- form)", string(r))
			}
		}
	}
	return nil
}

// relayArg returns the relay name in args[0], validated and folded to
// lower case. allowAll accepts "all".
func relayArg(v Verb, args []string, allowAll bool) (string, error) {
	if len(args) == 0 {
		what := "a relay name"
		if allowAll {
			what = `a relay name or "all"`
		}
		return "", syntaxErr(v, "%s needs %s: %s (the relays command lists them)", v, what, v.Usage())
	}
	r := strings.ToLower(args[0])
	if allowAll && r == message.AllRelays {
		return r, nil
	}
	if !ValidRelayName(r) {
		return "", syntaxErr(v, "%q is not a relay name: relay names are 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit; usage: %s", clip(args[0]), v.Usage())
	}
	return r, nil
}

func noMore(v Verb, extra []string) error {
	if len(extra) == 0 {
		return nil
	}
	return syntaxErr(v, "%s does not take %q; usage: %s", v, clip(strings.Join(extra, " ")), v.Usage())
}

// ParseWindow reads a duration as the grammar writes it: a Go duration
// ("90m", "1h30m") or whole days ("7d", "1d12h").
func ParseWindow(s string) (time.Duration, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > maxDays {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		days = n
		s = s[i+1:]
		if s == "" {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	if d > math.MaxInt64-time.Duration(days)*24*time.Hour {
		return 0, fmt.Errorf("%q is too long", s)
	}
	return time.Duration(days)*24*time.Hour + d, nil
}

func parseWindow(v Verb, s string, limit time.Duration) (time.Duration, error) {
	d, err := ParseWindow(s)
	if err != nil || d <= 0 {
		return 0, syntaxErr(v, "%q is not a duration; write e.g. 30m, 24h or 7d: %s", clip(s), v.Usage())
	}
	if d > limit {
		return 0, syntaxErr(v, "%s is too long: at most %s", clip(s), FormatWindow(limit))
	}
	return d, nil
}

// FormatWindow writes d the way ParseWindow reads it, in whole days where
// it can ("7d", "24h" stays "24h", "36h" is "1d12h").
func FormatWindow(d time.Duration) string {
	const day = 24 * time.Hour
	if d <= 0 {
		return "0s"
	}
	if d <= day {
		return shortDuration(d)
	}
	days := d / day
	rest := d % day
	if rest == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%s", days, shortDuration(rest))
}

// shortDuration drops the zero units time.Duration.String leaves ("1h0m0s"
// → "1h").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func knownVerb(v Verb) bool { return lookupVerb(v) != nil }

func verbList() string {
	names := make([]string, len(Verbs))
	for i, v := range Verbs {
		names[i] = string(v)
	}
	return strings.Join(names, ", ")
}

// suggest returns the verb nearest to word when it is a likely typo.
func suggest(word string) string {
	best, bestD := "", 3
	for _, v := range Verbs {
		if d := editdist.Distance(word, string(v)); d < bestD {
			best, bestD = string(v), d
		}
	}
	if bestD > 1 && len(word) < 4 {
		return ""
	}
	return best
}

// clip bounds user text echoed back in an error.
func clip(s string) string {
	const n = 60
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
