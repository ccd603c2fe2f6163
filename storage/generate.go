package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

// GenerateOptions shape a synthetic history for benchmarks and demos.
// Zero fields take the defaults in brackets.
type GenerateOptions struct {
	Relays int           // relays [20]
	MX     int           // MX hosts [5]
	IPs    int           // addresses per MX host [2]
	Every  time.Duration // probing interval [5m]
	Days   int           // history length [365]
	// RawDays of the most recent history are stored as raw results; the
	// older part directly as the hourly rollups retention would have left
	// [30].
	RawDays int
	End     time.Time // end of the history [the store's now]
	// FailureRate is the share of failed probes [0.002]; on top, every
	// relay has one hour-long TLS outage per 30 days.
	FailureRate float64
	Seed        uint64
	// BatchRuns is the number of runs per transaction [200].
	BatchRuns int
	// Progress, when set, is called after every batch with the raw
	// results written so far.
	Progress func(results int)
}

// GenerateStats reports what Generate wrote.
type GenerateStats struct {
	Runs, Results, Rollups int
	RawSince               time.Time // the first raw result
}

// generated failure classes and their weights.
var genFailures = []struct {
	f     probe.Failure
	stage probe.Stage
	w     int
}{
	{probe.FailTLSReset, probe.StageHandshake, 50},
	{probe.FailConnectTimeout, probe.StageConnect, 20},
	{probe.FailTLSTimeout, probe.StageHandshake, 10},
	{probe.FailBannerTimeout, probe.StageBanner, 10},
	{probe.FailStartTLSRejected, probe.StageStartTLS, 5},
	{probe.FailAgentUnreachable, probe.StageAgent, 5},
}

// Generate fills s with a synthetic year (by default) of probing: relays
// relay-01…, MX hosts of Gmail's shape, IPv4 and IPv6 addresses. It is
// meant for benchmarks and for trying reports on a realistic database,
// never for a production file.
func (s *Store) Generate(ctx context.Context, o GenerateOptions) (GenerateStats, error) {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Relays, 20)
	def(&o.MX, 5)
	def(&o.IPs, 2)
	def(&o.Days, 365)
	def(&o.RawDays, 30)
	def(&o.BatchRuns, 200)
	if o.Every <= 0 {
		o.Every = 5 * time.Minute
	}
	if o.End.IsZero() {
		o.End = s.now()
	}
	if o.FailureRate <= 0 {
		o.FailureRate = 0.002
	}
	o.RawDays = min(o.RawDays, o.Days)
	rng := rand.New(rand.NewPCG(o.Seed, 0x676d61696c746c73))
	var st GenerateStats

	var specs []RelaySpec
	for i := range o.Relays {
		specs = append(specs, RelaySpec{Name: fmt.Sprintf("relay-%02d", i+1), Kind: "local"})
	}
	if err := s.SyncRelays(ctx, specs); err != nil {
		return st, err
	}
	type mxAddr struct {
		host string
		pref uint16
		ip   string
	}
	var addrs []mxAddr
	for m := range o.MX {
		host := "gmail-smtp-in.l.google.com"
		pref := uint16(5)
		if m > 0 {
			host = fmt.Sprintf("alt%d.gmail-smtp-in.l.google.com", m)
			pref = uint16(10 * (m + 1))
		}
		for i := range o.IPs {
			ip := fmt.Sprintf("192.0.2.%d", m*16+i+1)
			if i%2 == 1 {
				ip = fmt.Sprintf("2001:db8:%x::%x", m+1, i)
			}
			addrs = append(addrs, mxAddr{host, pref, ip})
		}
	}
	certs := []probe.Certificate{
		{Subject: "CN=mx.google.com", Issuer: "CN=WR2,O=Google Trust Services,C=US",
			SANs: []string{"mx.google.com", "gmail-smtp-in.l.google.com", "*.gmail-smtp-in.l.google.com"}},
		{Subject: "CN=WR2,O=Google Trust Services,C=US", Issuer: "CN=GTS Root R1,O=Google Trust Services LLC,C=US"},
	}
	transcript := func(host string) []string {
		return []string{"S: 220 mx.google.com ESMTP a1-20020a05 - gsmtp", "C: EHLO relay.example.net",
			"S: 250-mx.google.com at your service, [198.51.100.7]", "S: 250-SIZE 157286400", "S: 250-8BITMIME",
			"S: 250-STARTTLS", "S: 250-ENHANCEDSTATUSCODES", "S: 250-PIPELINING", "S: 250-CHUNKING", "S: 250 SMTPUTF8",
			"C: STARTTLS", "S: 220 2.0.0 Ready to start TLS", "* TLS 1.3 handshake with " + host + " completed",
			"C: EHLO relay.example.net", "S: 250-mx.google.com at your service", "C: QUIT", "S: 221 2.0.0 closing connection"}
	}
	end := o.End.Truncate(o.Every)
	start := end.AddDate(0, 0, -o.Days)
	rawStart := time.UnixMilli(floorHour(ms(end.AddDate(0, 0, -o.RawDays)))).UTC()
	st.RawSince = rawStart
	outageHour := func(relay int, t time.Time) bool {
		// one hour per 30 days, at a relay-dependent offset
		h := t.Unix() / 3600
		return (h+int64(relay)*97)%(30*24) == 0
	}
	failure := func() (probe.Failure, probe.Stage) {
		n := rng.IntN(100)
		for _, f := range genFailures {
			if n < f.w {
				return f.f, f.stage
			}
			n -= f.w
		}
		return probe.FailTLSReset, probe.StageHandshake
	}

	// The rolled-up past, hour by hour.
	if rawStart.After(start) {
		n, err := s.generateRollups(ctx, rng, o, specs, start, rawStart, outageHour, failure)
		if err != nil {
			return st, err
		}
		st.Rollups = n
	}

	// The raw recent past.
	var batch []RunWithResults
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.RecordRuns(ctx, batch); err != nil {
			return err
		}
		st.Runs += len(batch)
		for _, b := range batch {
			st.Results += len(b.Results)
		}
		batch = batch[:0]
		if o.Progress != nil {
			o.Progress(st.Results)
		}
		return nil
	}
	first := rawStart
	if first.Before(start) {
		first = start
	}
	for t := first; t.Before(end); t = t.Add(o.Every) {
		for ri, spec := range specs {
			rw := RunWithResults{Run: Run{Relay: spec.Name, Trigger: message.SourceSchedule, StartedAt: t}}
			rw.Results = make([]probe.Result, 0, len(addrs))
			outage := outageHour(ri, t)
			for ai, a := range addrs {
				at := t.Add(time.Duration(ai*37) * time.Millisecond)
				r := probe.Result{Relay: spec.Name, Engine: probe.EngineNative, MX: a.host, Preference: a.pref, IP: a.ip,
					Port: 25, StartedAt: at, OK: true, Hints: []string{},
					Timings: probe.Timings{Connect: 8 + rng.Float64()*10, Banner: 30 + rng.Float64()*30, EHLO: 15 + rng.Float64()*10,
						StartTLS: 15 + rng.Float64()*10, Handshake: 30 + rng.NormFloat64()*5 + 20*rng.Float64()*rng.Float64(),
						PostTLS: 15 + rng.Float64()*10}}
				tm := &r.Timings
				tm.Total = tm.Connect + tm.Banner + tm.EHLO + tm.StartTLS + tm.Handshake + tm.PostTLS
				if outage || rng.Float64() < o.FailureRate {
					f, stage := failure()
					if outage {
						f, stage = probe.FailTLSReset, probe.StageHandshake
					}
					r.OK, r.Failure, r.Stage = false, f, stage
					r.Error = "read tcp " + a.ip + ":25: connection reset by peer"
					r.Hints = []string{probe.Hint(f)}
					r.Transcript = transcript(a.host)[:12]
					tm.Handshake, tm.PostTLS = 0, 0
				} else {
					r.TLS = &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_256_GCM_SHA384", Group: "X25519MLKEM768",
						Verified: true, PeerCertificates: certs}
					r.Transcript = transcript(a.host)
				}
				rw.Results = append(rw.Results, r)
			}
			batch = append(batch, rw)
			if len(batch) >= o.BatchRuns {
				if err := flush(); err != nil {
					return st, err
				}
			}
		}
		// Certificates count down toward expiry as days pass.
		if t.Hour() == 0 && t.Minute() == 0 {
			certs = append([]probe.Certificate(nil), certs...)
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	// Mark the rolled-up part, as retention would have.
	err := s.write(ctx, "generate history", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.FormatInt(ms(rawStart), 10))
		return err
	})
	if err != nil {
		return st, err
	}
	return st, s.dialect.afterBulkLoad(ctx, s)
}

// generateRollups writes the hourly rollups of [from, to) directly.
func (s *Store) generateRollups(ctx context.Context, rng *rand.Rand, o GenerateOptions, specs []RelaySpec,
	from, to time.Time, outageHour func(int, time.Time) bool, failure func() (probe.Failure, probe.Stage)) (int, error) {
	perHour := int(time.Hour / o.Every)
	attempts := perHour * o.IPs
	var mxIDs []int64
	var relayIDs []int64
	err := s.write(ctx, "generate history", func(tx *sql.Tx) error {
		in := newInterner(ctx, tx, &s.cache, ms(s.now()))
		for m := range o.MX {
			host := "gmail-smtp-in.l.google.com"
			if m > 0 {
				host = fmt.Sprintf("alt%d.gmail-smtp-in.l.google.com", m)
			}
			id, err := in.mx(host)
			if err != nil {
				return err
			}
			mxIDs = append(mxIDs, id)
		}
		for _, sp := range specs {
			id, err := in.relay(sp.Name)
			if err != nil {
				return err
			}
			relayIDs = append(relayIDs, id)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	h := time.UnixMilli(floorHour(ms(from))).UTC()
	const hoursPerTx = 24
	for h.Before(to) {
		err := s.write(ctx, "generate history", func(tx *sql.Tx) error {
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO rollups (hour, relay_id, mx_id, attempts, failures,
				by_class, p50_handshake, p95_handshake, successes_timed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (relay_id, hour, mx_id) DO UPDATE SET attempts = excluded.attempts, failures = excluded.failures,
					by_class = excluded.by_class, p50_handshake = excluded.p50_handshake,
					p95_handshake = excluded.p95_handshake, successes_timed = excluded.successes_timed`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			hourly, err := tx.PrepareContext(ctx, `INSERT INTO hourly (relay_id, hour, ok, failure, n,
				p50_handshake, timed) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (relay_id, hour, ok, failure) DO UPDATE SET n = excluded.n,
					p50_handshake = excluded.p50_handshake, timed = excluded.timed`)
			if err != nil {
				return err
			}
			defer hourly.Close()
			last, err := tx.PrepareContext(ctx, `INSERT INTO rollup_last (relay_id, last_ok_at, last_fail_at, last_fail_class)
				VALUES (?1, ?2, ?3, ?4) ON CONFLICT (relay_id) DO UPDATE SET
				last_ok_at = CASE WHEN ?2 > rollup_last.last_ok_at THEN ?2 ELSE rollup_last.last_ok_at END,
				last_fail_class = CASE WHEN ?3 > rollup_last.last_fail_at THEN ?4 ELSE rollup_last.last_fail_class END,
				last_fail_at = CASE WHEN ?3 > rollup_last.last_fail_at THEN ?3 ELSE rollup_last.last_fail_at END`)
			if err != nil {
				return err
			}
			defer last.Close()
			for i := 0; i < hoursPerTx && h.Before(to); i++ {
				for ri, rid := range relayIDs {
					outage := outageHour(ri, h)
					var lastFail int64
					var lastClass string
					relayClass := map[string]int{}
					var okN, p50Sum int64
					for _, mid := range mxIDs {
						byClass := map[string]int{}
						fails := 0
						if outage {
							fails = attempts
							byClass[string(probe.FailTLSReset)] = attempts
						} else {
							for range attempts {
								if rng.Float64() < o.FailureRate {
									f, _ := failure()
									byClass[string(f)]++
									fails++
									lastClass = string(f)
								}
							}
						}
						if fails > 0 {
							lastFail = ms(h.Add(time.Hour - o.Every))
							if outage {
								lastClass = string(probe.FailTLSReset)
							}
						}
						b, _ := json.Marshal(byClass)
						p50 := int64(330 + rng.IntN(40))
						if _, err := stmt.ExecContext(ctx, ms(h), rid, mid, attempts, fails, string(b), p50, p50+150+int64(rng.IntN(100)),
							attempts-fails); err != nil {
							return err
						}
						n++
						for k, v := range byClass {
							relayClass[k] += v
						}
						okN += int64(attempts - fails)
						p50Sum += p50 * int64(attempts-fails)
					}
					if okN > 0 {
						if _, err := hourly.ExecContext(ctx, rid, ms(h), true, "", okN, p50Sum/okN, okN); err != nil {
							return err
						}
					}
					for k, v := range relayClass {
						if _, err := hourly.ExecContext(ctx, rid, ms(h), false, k, v, 0, 0); err != nil {
							return err
						}
					}
					okAt := int64(0)
					if !outage {
						okAt = ms(h.Add(time.Hour - o.Every))
					}
					if _, err := last.ExecContext(ctx, rid, okAt, lastFail, lastClass); err != nil {
						return err
					}
				}
				h = h.Add(time.Hour)
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
