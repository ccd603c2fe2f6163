package monitor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// compareWindow is how far back Compare looks for each relay's latest
// result per MX address.
const compareWindow = 24 * time.Hour

// CompareModel is a relay beside another (`gmailtls compare relay-2
// relay-1 --json`): each side's evidence, and the fields compared, those
// that differ apart from those that are the same.
type CompareModel struct {
	Relays [2]string      `json:"relays"`
	Sides  [2]CompareSide `json:"sides"`
	// Differs and Same are the compared fields, in a fixed order.
	Differs []CompareField `json:"differs"`
	Same    []CompareField `json:"same"`
}

// CompareSide is what is known of one relay: its host, TLS policy, queue
// and mail log (as evidence gathers them, asked now) and its latest
// stored result per MX address.
type CompareSide struct {
	Relay       string         `json:"relay"`
	Kind        string         `json:"kind,omitempty"`
	Host        *relay.Info    `json:"host,omitempty"`
	HostError   string         `json:"host_error,omitempty"`
	Policy      *relay.Policy  `json:"policy,omitempty"`
	PolicyError string         `json:"policy_error,omitempty"`
	Queue       *QueueEvidence `json:"queue,omitempty"`
	Log         *LogEvidence   `json:"log,omitempty"`
	Latest      []LatestResult `json:"latest"`
}

// LatestResult is a relay's newest stored result toward one MX address.
type LatestResult struct {
	MX       string    `json:"mx"`
	IP       string    `json:"ip"`
	At       time.Time `json:"at"`
	OK       bool      `json:"ok"`
	Failure  string    `json:"failure,omitempty"`
	Stage    string    `json:"stage,omitempty"`
	ResultID int64     `json:"result_id"`
}

// CompareField is one compared field: its name and each relay's value
// ("unknown" when that relay could not say).
type CompareField struct {
	Name   string    `json:"name"`
	Values [2]string `json:"values"`
}

// Compare gathers two relays' evidence at once and compares them field by
// field: outbound IPs, MTA and TLS library versions, CA bundle, TLS policy
// and transport toward Gmail, the latest result per MX address, the mail
// log's failure counts and the Gmail-bound queue. A relay that cannot be
// asked is compared with what is stored; only an unknown relay is an
// error.
func (m *Monitor) Compare(ctx context.Context, snap *Snapshot, a, b string) (CompareModel, error) {
	cm := CompareModel{Relays: [2]string{a, b}}
	names := [2]string{a, b}
	var errs [2]error
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() { cm.Sides[i], errs[i] = m.compareSide(ctx, snap, names[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return CompareModel{}, err
		}
	}
	for _, f := range compareFields(cm.Sides) {
		if f.Values[0] == f.Values[1] {
			cm.Same = append(cm.Same, f)
		} else {
			cm.Differs = append(cm.Differs, f)
		}
	}
	if cm.Differs == nil {
		cm.Differs = []CompareField{}
	}
	if cm.Same == nil {
		cm.Same = []CompareField{}
	}
	return cm, nil
}

// compareSide gathers one relay's side: its latest result per MX address
// from storage, then its evidence asked now.
func (m *Monitor) compareSide(ctx context.Context, snap *Snapshot, name string) (CompareSide, error) {
	stored, err := m.store.History(ctx, storage.HistoryQuery{Relay: name, Since: m.now().Add(-compareWindow), Limit: 500})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return CompareSide{}, fmt.Errorf("reading the results of %s: %w", name, err)
	}
	side := CompareSide{Relay: name, Latest: []LatestResult{}}
	seen := map[string]bool{}
	var latest []storage.StoredResult
	for _, r := range stored { // newest first
		key := r.Result.MX + " " + r.Result.IP
		if seen[key] {
			continue
		}
		seen[key] = true
		latest = append(latest, r)
		side.Latest = append(side.Latest, LatestResult{MX: r.Result.MX, IP: r.Result.IP, At: r.StartedAt, OK: r.OK,
			Failure: string(r.Result.Failure), Stage: string(r.Result.Stage), ResultID: r.ID})
	}
	slices.SortFunc(side.Latest, func(x, y LatestResult) int {
		return strings.Compare(x.MX+" "+x.IP, y.MX+" "+y.IP)
	})
	ev := m.evidenceModel(ctx, snap, name, latest)
	side.Kind, side.Host, side.HostError = ev.Kind, ev.Host, ev.HostError
	side.Policy, side.PolicyError, side.Queue, side.Log = ev.Policy, ev.PolicyError, ev.Queue, ev.Log
	return side, nil
}

// compareFields are the compared fields of two sides, in a fixed order.
func compareFields(s [2]CompareSide) []CompareField {
	var out []CompareField
	add := func(name string, f func(CompareSide) string) {
		// One line per value: tools' output may span several.
		oneLine := func(v string) string { return strings.Join(strings.Fields(v), " ") }
		out = append(out, CompareField{Name: name, Values: [2]string{oneLine(f(s[0])), oneLine(f(s[1]))}})
	}
	host := func(f func(relay.Info) string) func(CompareSide) string {
		return func(c CompareSide) string {
			if c.Host == nil {
				return "unknown"
			}
			return orNone(f(*c.Host))
		}
	}
	pol := func(f func(relay.Policy) string) func(CompareSide) string {
		return func(c CompareSide) string {
			if c.Policy == nil || !c.Policy.Available {
				return "unknown"
			}
			return orNone(f(*c.Policy))
		}
	}
	add("Kind", func(c CompareSide) string { return orNone(c.Kind) })
	add("Outbound IPs", host(func(i relay.Info) string { return strings.Join(i.OutboundIPs, ", ") }))
	add("MTA", host(func(i relay.Info) string { return strings.TrimSpace(i.MTA + " " + i.MTAVersion) }))
	add("TLS library", host(func(i relay.Info) string { return i.TLSLibrary }))
	add("gmailtls", host(func(i relay.Info) string { return i.Version }))
	add("Security level", pol(func(p relay.Policy) string { return p.EffectiveLevel }))
	add("Policy entry", pol(func(p relay.Policy) string { return p.PolicyEntry }))
	add("MTA-STS resolver", pol(func(p relay.Policy) string { return p.MTASTSResolver }))
	add("Transport", pol(func(p relay.Policy) string {
		if p.Transport != "" {
			return p.Transport
		}
		if p.Relayhost != "" {
			return "relayhost " + p.Relayhost
		}
		return "MX hosts"
	}))
	add("CA bundle", pol(func(p relay.Policy) string {
		ca := strings.TrimSpace(p.CAFile + " " + p.CAPath)
		if ca == "" {
			return ""
		}
		if p.CACertificates > 0 && !p.CANewestNotBefore.IsZero() {
			ca += fmt.Sprintf(" (%d certificates, newest %s)", p.CACertificates, p.CANewestNotBefore.Format("2006-01-02"))
		}
		return ca
	}))
	add("Mandatory protocols", pol(func(p relay.Policy) string { return p.MandatoryProtocols }))
	add("On a TLS failure", pol(func(p relay.Policy) string { return p.OnTLSFailure }))
	// The latest result per MX address, over the union of both sides'.
	var keys []string
	for _, side := range s {
		for _, l := range side.Latest {
			if k := latestKey(l); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		add("Latest "+k, func(c CompareSide) string {
			for _, l := range c.Latest {
				if latestKey(l) == k {
					if l.OK {
						return "passed"
					}
					return l.Failure
				}
			}
			return "none stored"
		})
	}
	logCount := func(f func(mx logMX) int) func(CompareSide) string {
		return func(c CompareSide) string {
			if c.Log == nil || !c.Log.Available {
				return "unknown"
			}
			n := 0
			for _, x := range c.Log.MX {
				n += f(logMX{x.TLSFailures, x.ConnectFailures, x.OtherFailures, x.Delivered})
			}
			return fmt.Sprint(n)
		}
	}
	add("Log TLS failures", logCount(func(x logMX) int { return x.TLS }))
	add("Log connection failures", logCount(func(x logMX) int { return x.Connect }))
	add("Log other failures", logCount(func(x logMX) int { return x.Other }))
	add("Log deliveries", logCount(func(x logMX) int { return x.Delivered }))
	add("Log queue IDs failing, not delivered", func(c CompareSide) string {
		if c.Log == nil || !c.Log.Available {
			return "unknown"
		}
		n := 0
		for _, q := range c.Log.Queue {
			if !q.Delivered {
				n++
			}
		}
		return fmt.Sprint(n)
	})
	add("Gmail-bound queue", func(c CompareSide) string {
		if c.Queue == nil || !c.Queue.Available {
			return "unknown"
		}
		return fmt.Sprintf("%d deferred", c.Queue.Deferred)
	})
	return out
}

// logMX is the mail log's counts toward one MX address, as compared.
type logMX struct{ TLS, Connect, Other, Delivered int }

func latestKey(l LatestResult) string {
	if l.IP == "" || l.IP == l.MX {
		return l.MX
	}
	return l.MX + " [" + l.IP + "]"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
