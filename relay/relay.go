// Package relay runs probes from where mail actually leaves: in process on
// this host (Local, optionally bound to each of the relay's outbound source
// IPs) or on a remote relay through its `gmailtls agent` (Agent, over signed
// HTTPS). It also holds the agent's HTTP server (NewServer), the request
// signature both sides share (Sign, Verify), and the relay-side facts the
// bot asks for: host information (Info) and Gmail-bound mail in the local
// queue (Queue). Runners builds every configured relay from the
// configuration (ProbeConfig for the [target] section), so that the bot,
// the CLI and the agent build relays the same way.
//
// A request to an agent flows like this:
//
//  1. the bot's Agent encodes Options as JSON and signs
//     "v1:"+ts+":"+method+":"+path+":"+body with the relay's shared secret;
//  2. the agent's server caps the body, verifies the signature, the clock
//     skew and the replay cache, and only then decodes the options;
//  3. it narrows the configured target to the requested MX hosts (never
//     adding one), runs the native probe and, when asked, the relay's own
//     TLS stack (openssl s_client, posttls-finger) toward the same IPs;
//  4. it answers with the same JSON report as `gmailtls probe --json`.
//
// Whatever goes wrong between the bot and the agent becomes a result with
// failure agent_unreachable or agent_error, never a Gmail failure class.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// Relay kinds, as written in config.toml's [[relay]] kind.
const (
	KindLocal = "local"
	KindAgent = "agent"
)

// Sentinel errors of the package. Errors returned by its functions wrap one
// of these first, so callers can use errors.Is.
var (
	// ErrOptions marks probe options that cannot be honoured (bad family,
	// an MX host that is not part of the configured target).
	ErrOptions = errors.New("relay: invalid probe options")
	// ErrNotConfigured marks an MX host outside the configured target.
	ErrNotConfigured = errors.New("relay: not a configured target")
	// ErrAgentUnreachable marks an agent that could not be reached or did
	// not answer in time.
	ErrAgentUnreachable = errors.New("relay: agent unreachable")
	// ErrAgentError marks an agent that answered, but not usefully.
	ErrAgentError = errors.New("relay: agent error")
	// ErrSignature marks a request whose signature is missing, wrong,
	// skewed or replayed.
	ErrSignature = errors.New("relay: bad request signature")
)

// Options is what a caller may choose for one probe. The target (domain, MX
// set, servername, CA) is always the configured one: a caller can narrow it
// to a subset of the configured MX hosts but never add one.
//
// Options is also the JSON body of POST /v1/probe.
type Options struct {
	// MX narrows the probe to these MX host names (or pinned host:port
	// entries) of the configured target; empty means all of them.
	MX []string `json:"mx,omitempty"`
	// Family is "4", "6" or "any"; empty keeps the configured family.
	Family string `json:"family,omitempty"`
	// NoRetry disables the narrower-ClientHello retries after a reset.
	NoRetry bool `json:"no_retry,omitempty"`
	// MTAStack also runs the relay's own TLS tools (openssl s_client,
	// posttls-finger) toward the same MX IPs, where the relay allows it.
	MTAStack bool `json:"mta_stack,omitempty"`
	// Sources are the relay's own addresses to probe from, each
	// separately (a relay's source_ips); empty keeps the runner's
	// configured sources, or the system's choice. An address that is not
	// the relay host's own is refused (ErrOptions).
	Sources []string `json:"source_ips,omitempty"`
	// Nonce is a random value the bot's client sets on every request so
	// that two identical requests in the same second (two bot processes,
	// say) sign differently and are not refused as a replay.
	Nonce string `json:"nonce,omitempty"`
	// OnResult, when set, is called with each native result as it
	// completes (probe.Config.OnResult), so that a person waiting sees the
	// MX addresses answer one by one. A local relay streams; an agent
	// answers in one piece and calls nothing (its caller has the report).
	// Never sent to an agent.
	OnResult func(probe.Result) `json:"-"`
}

// Runner runs a probe for one relay.
type Runner interface {
	// Probe runs one probe. Failures of the probe, or of the agent that
	// runs it, are results with a failure class; the error is for options
	// that cannot be honoured and programming errors only.
	Probe(ctx context.Context, opts Options) (probe.Report, error)
	// Name is the relay's configured name.
	Name() string
	// Kind is KindLocal or KindAgent.
	Kind() string
}

// InfoQueuer is a relay that can describe its host and its mail queue.
type InfoQueuer interface {
	Info(ctx context.Context) (Info, error)
	Queue(ctx context.Context) (Queue, error)
}

// Info describes the host a relay probes from: what an escalation to a
// network or Google team needs besides the results themselves.
type Info struct {
	Hostname    string    `json:"hostname"`
	Version     string    `json:"version"`
	OutboundIPs []string  `json:"outbound_ips"`
	Clock       time.Time `json:"clock"`
	// MTA is "postfix", "exim" or empty when neither was found.
	MTA        string `json:"mta,omitempty"`
	MTAVersion string `json:"mta_version,omitempty"`
	// TLSLibrary is the output of `openssl version`, e.g.
	// "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)".
	TLSLibrary string `json:"tls_library,omitempty"`
}

// Queue summarises Gmail-bound mail waiting in the relay's queue.
type Queue struct {
	// Deferred counts deferred messages with at least one Gmail-bound
	// recipient: at gmail.com or googlemail.com, or at a domain whose MX
	// hosts are Google's, or configured by hand (Domains says which).
	Deferred int
	// OldestAge is the age of the oldest of them.
	OldestAge time.Duration
	// TopReason is the most common deferral reason, normalised so that the
	// same cause groups (IP addresses and queue ids replaced).
	TopReason string
	// Recipients counts the Gmail-bound recipients of those messages.
	Recipients int
	// Malformed counts lines of `postqueue -j` output that could not be
	// parsed and were skipped.
	Malformed int
	// Warning is postqueue's own first warning, if any (e.g. "Mail system
	// is down -- accessing queue directly").
	Warning string
	// Available is false when the queue could not be read (no Postfix, or
	// postqueue failed); Error then says why.
	Available bool
	Error     string
	// OldestArrival is the oldest message's arrival time on the relay's
	// clock (zero when unknown): OldestAge is the agent's clock minus it.
	OldestArrival time.Time
	// Reasons are the deferral reasons, the most common first (at most
	// mta.MaxReasonGroups), each with its queue ids.
	Reasons []QueueReason
	// Domains are the Gmail-bound recipient domains and why each counts.
	Domains []QueueDomain
	// Dropped counts deferred messages left out of a very large queue.
	Dropped int
}

// QueueReason is one normalised deferral reason of Gmail-bound mail.
type QueueReason struct {
	Reason     string `json:"reason"`
	Recipients int    `json:"recipients"`
	Messages   int    `json:"messages"`
	// QueueIDs are its messages, oldest first, at most
	// mta.MaxIDsPerReason; MoreIDs counts the others.
	QueueIDs []QueuedMessage `json:"queue_ids"`
	MoreIDs  int             `json:"more_queue_ids,omitempty"`
}

// QueuedMessage is one deferred message: its Postfix queue id, its
// arrival time, and the domains (never the addresses) of its Gmail-bound
// recipients deferred for the reason it is listed under.
type QueuedMessage struct {
	ID      string    `json:"id"`
	Arrival time.Time `json:"arrival,omitzero"`
	Domains []string  `json:"domains"`
}

// QueueDomain is one Gmail-bound recipient domain of the queue.
type QueueDomain struct {
	Domain string `json:"domain"`
	// Why is "gmail_domain", "google_mx" (its MX hosts are Google's; MX
	// names one), "configured" ([agent] gmail_domains) or "mail_log" (its
	// delivery attempts went to the target's MX hosts).
	Why        string `json:"why"`
	MX         string `json:"mx,omitempty"`
	Recipients int    `json:"recipients"`
}

type queueJSON struct {
	Deferred      int           `json:"deferred"`
	OldestAgeS    float64       `json:"oldest_age_s"`
	TopReason     string        `json:"top_reason,omitempty"`
	Recipients    int           `json:"recipients"`
	Malformed     int           `json:"malformed_lines,omitempty"`
	Warning       string        `json:"warning,omitempty"`
	Available     bool          `json:"available"`
	Error         string        `json:"error,omitempty"`
	OldestArrival time.Time     `json:"oldest_arrival,omitzero"`
	Reasons       []QueueReason `json:"reasons,omitempty"`
	Domains       []QueueDomain `json:"domains,omitempty"`
	Dropped       int           `json:"dropped,omitempty"`
}

// Bounds on what the bot keeps of an agent's queue answer.
const (
	maxQueueReasons = 50
	maxQueueIDs     = 100
	maxQueueDomains = 200
)

// MarshalJSON writes the queue in snake_case with the oldest age in seconds
// ("oldest_age_s").
func (q Queue) MarshalJSON() ([]byte, error) {
	return json.Marshal(queueJSON{
		Deferred:   q.Deferred,
		OldestAgeS: q.OldestAge.Seconds(),
		TopReason:  q.TopReason,
		Recipients: q.Recipients,
		Malformed:  q.Malformed,
		Warning:    q.Warning,
		Available:  q.Available,
		Error:      q.Error,

		OldestArrival: q.OldestArrival,
		Reasons:       q.Reasons,
		Domains:       q.Domains,
		Dropped:       q.Dropped,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (q *Queue) UnmarshalJSON(b []byte) error {
	var j queueJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if math.IsNaN(j.OldestAgeS) || math.IsInf(j.OldestAgeS, 0) || j.OldestAgeS < 0 || j.OldestAgeS > 100*365*24*3600 {
		return fmt.Errorf("oldest_age_s out of range: %v", j.OldestAgeS)
	}
	*q = Queue{
		Deferred:   j.Deferred,
		OldestAge:  time.Duration(j.OldestAgeS * float64(time.Second)),
		TopReason:  j.TopReason,
		Recipients: j.Recipients,
		Malformed:  j.Malformed,
		Warning:    j.Warning,
		Available:  j.Available,
		Error:      j.Error,

		OldestArrival: j.OldestArrival,
		Reasons:       j.Reasons[:min(len(j.Reasons), maxQueueReasons)],
		Domains:       j.Domains[:min(len(j.Domains), maxQueueDomains)],
		Dropped:       j.Dropped,
	}
	for i := range q.Reasons {
		r := &q.Reasons[i]
		if len(r.QueueIDs) > maxQueueIDs {
			r.MoreIDs += len(r.QueueIDs) - maxQueueIDs
			r.QueueIDs = r.QueueIDs[:maxQueueIDs]
		}
	}
	return nil
}

// ClockSkew estimates how far the relay's clock is ahead of ours (negative:
// behind) from an Info answer requested at sentAt and received at
// receivedAt (both our clock). The request's round trip is split evenly.
func ClockSkew(info Info, sentAt, receivedAt time.Time) time.Duration {
	if info.Clock.IsZero() {
		return 0
	}
	mid := sentAt.Add(receivedAt.Sub(sentAt) / 2)
	return info.Clock.Sub(mid)
}

// SignificantSkew is the clock skew above which CertExpiredHint speaks up.
const SignificantSkew = 2 * time.Minute

// CertExpiredHint is the hint added to a cert_expired result when the
// relay's clock is off: a wrong clock makes a valid certificate look expired
// (or not yet valid). It is empty when the skew is below SignificantSkew.
func CertExpiredHint(skew time.Duration) string {
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	if abs < SignificantSkew {
		return ""
	}
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	return fmt.Sprintf("the relay's clock is %s %s the bot's: a wrong clock makes valid certificates look expired; fix NTP on the relay before blaming the certificate",
		abs.Round(time.Second), dir)
}

// ApplyClockSkew adds CertExpiredHint to every cert_expired result of rep.
func ApplyClockSkew(rep *probe.Report, skew time.Duration) {
	hint := CertExpiredHint(skew)
	if hint == "" {
		return
	}
	for i := range rep.Results {
		if rep.Results[i].Failure == probe.FailCertExpired {
			rep.Results[i].Hints = appendHint(rep.Results[i].Hints, hint)
		}
	}
}

// MTAStackHint is added to an MTA-stack result that fails toward an IP that
// the native probe reached successfully.
const MTAStackHint = "the network path is fine, the relay's TLS library or its configuration is not"

func appendHint(hints []string, h string) []string {
	for _, x := range hints {
		if x == h {
			return hints
		}
	}
	return append(hints, h)
}
