package storage

import (
	"bytes"
	"cmp"
	"compress/flate"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

// Run is one probe run: who or what asked for it, from which relay, when.
type Run struct {
	ID    int64
	Relay string
	// Trigger is what started the run: one of the message.Source
	// constants (slash, button, schedule, console, cli, confirm); empty
	// is stored as cli.
	Trigger     message.Source
	RequestedBy string
	StartedAt   time.Time
	// ControlFailed says that the relay's control destination ([target]
	// control_mx), probed beside this run through the same relay, failed
	// too. The control's own results are never stored.
	ControlFailed bool
}

// RunWithResults is one element of a batch for RecordRuns.
type RunWithResults struct {
	Run     Run
	Results []probe.Result
}

// StoredResult is a probe result as read back. Times come back in UTC and
// timings rounded to a tenth of a millisecond. Transcript is nil when it
// was not kept (only failures and the newest success per relay × MX keep
// theirs) or not asked for.
type StoredResult struct {
	ID    int64
	RunID int64
	probe.Result
	Trigger message.Source
	// RunStartedAt is when its run started (set by the lean reads, Recent
	// and ResultsAfter; zero otherwise).
	RunStartedAt time.Time
	// ControlFailed is its run's Run.ControlFailed (set by the lean reads).
	ControlFailed bool
}

// maxTranscriptLines bounds a stored transcript; longer ones keep their
// head and tail around a marker line.
const maxTranscriptLines = 200

// RecordRun stores one run and its results in one transaction and returns
// the new ids, results in the order given. The run's relay is created if
// it is not configured (kind ""), and every result is stored under it.
func (s *Store) RecordRun(ctx context.Context, run Run, results []probe.Result) (runID int64, resultIDs []int64, err error) {
	var ids [][]int64
	var runIDs []int64
	err = s.write(ctx, "record run", func(tx *sql.Tx) error {
		var err error
		runIDs, ids, err = s.insertRuns(ctx, tx, []RunWithResults{{Run: run, Results: results}})
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return runIDs[0], ids[0], nil
}

// RecordRuns stores a batch of runs in one transaction: the fast path for
// bulk writers such as the history generator.
func (s *Store) RecordRuns(ctx context.Context, batch []RunWithResults) error {
	if len(batch) == 0 {
		return nil
	}
	return s.write(ctx, "record runs", func(tx *sql.Tx) error {
		_, _, err := s.insertRuns(ctx, tx, batch)
		return err
	})
}

// newestKey is relay × MX: the unit for which the newest success keeps
// its transcript.
type newestKey struct{ relayID, mxID int64 }

type candidate struct {
	run, res  int
	startedAt int64
}

func (s *Store) insertRuns(ctx context.Context, tx *sql.Tx, batch []RunWithResults) ([]int64, [][]int64, error) {
	now := s.now()
	in := newInterner(ctx, tx, &s.cache, ms(now))
	// Resolve relays and paths first, and pick per relay × MX the newest
	// success of the batch: the only success whose transcript is kept.
	relayIDs := make([]int64, len(batch))
	pathIDs := make([][]int64, len(batch))
	newest := map[newestKey]candidate{}
	for i := range batch {
		rw := &batch[i]
		name := rw.Run.Relay
		if name == "" && len(rw.Results) > 0 {
			name = rw.Results[0].Relay
		}
		if name == "" {
			return nil, nil, errors.New("run has no relay name")
		}
		var err error
		if relayIDs[i], err = in.relay(name); err != nil {
			return nil, nil, err
		}
		pathIDs[i] = make([]int64, len(rw.Results))
		for j := range rw.Results {
			r := &rw.Results[j]
			pid, mxID, err := in.path(relayIDs[i], r)
			if err != nil {
				return nil, nil, err
			}
			pathIDs[i][j] = pid
			if r.OK {
				k := newestKey{relayIDs[i], mxID}
				c := candidate{run: i, res: j, startedAt: ms(r.StartedAt)}
				if old, ok := newest[k]; !ok || c.startedAt >= old.startedAt {
					newest[k] = c
				}
			}
		}
	}
	// A candidate only wins if it is not older than the stored newest.
	type previous struct {
		resultID int64
		win      bool
	}
	st, err := readBatchState(ctx, tx, batch, relayIDs)
	if err != nil {
		return nil, nil, err
	}
	prev := map[newestKey]previous{}
	keep := map[[2]int]bool{}
	for k, c := range newest {
		if old, ok := st.newest[k]; ok {
			prev[k] = previous{resultID: old[0], win: c.startedAt >= old[1]}
		} else {
			prev[k] = previous{win: true}
		}
		if prev[k].win {
			keep[[2]int{c.run, c.res}] = true
		}
	}

	hourly, err := planHourly(ctx, tx, batch, relayIDs, st)
	if err != nil {
		return nil, nil, fmt.Errorf("hourly figures: %w", err)
	}
	runRows := make([][]any, len(batch))
	for i := range batch {
		rw := &batch[i]
		started := rw.Run.StartedAt
		if started.IsZero() {
			for _, r := range rw.Results {
				if !r.StartedAt.IsZero() && (started.IsZero() || r.StartedAt.Before(started)) {
					started = r.StartedAt
				}
			}
		}
		if started.IsZero() {
			started = now
		}
		trigger := rw.Run.Trigger
		if trigger == "" {
			trigger = message.SourceCLI
		}
		runRows[i] = []any{relayIDs[i], string(trigger), rw.Run.RequestedBy, ms(started)}
	}
	runIDs, err := insertRows(ctx, tx, `INSERT INTO runs (relay_id, trigger, requested_by, started_at)`, runRows)
	if err != nil {
		return nil, nil, fmt.Errorf("insert runs: %w", err)
	}
	// The writes that follow the results and whose answers nothing reads
	// go out together at the end (execAll: one round trip on PostgreSQL).
	var tail []stmt
	var resRows [][]any
	for i := range batch {
		rw := &batch[i]
		if rw.Run.ControlFailed {
			tail = append(tail, stmt{`INSERT INTO control_failures (run_id) VALUES (?)`, []any{runIDs[i]}})
		}
		for j := range rw.Results {
			r := &rw.Results[j]
			args, err := s.resultArgs(in, r, !r.OK || keep[[2]int{i, j}])
			if err != nil {
				return nil, nil, fmt.Errorf("result %s[%s]: %w", r.MX, r.IP, err)
			}
			resRows = append(resRows, append([]any{runIDs[i], relayIDs[i], pathIDs[i][j]}, args...))
		}
	}
	flat, err := insertRows(ctx, tx, `INSERT INTO results (
		run_id, relay_id, path_id, started_at, ok, stage, failure, engine, error, smtp_code, smtp_text,
		tls_id, cert_id, t_dns, t_connect, t_banner, t_ehlo, t_starttls, t_handshake, t_post_tls, t_total,
		hints, transcript)`, resRows)
	if err != nil {
		return nil, nil, fmt.Errorf("insert results: %w", err)
	}
	resIDs := make([][]int64, len(batch))
	for i := range batch {
		n := len(batch[i].Results)
		resIDs[i], flat = flat[:n:n], flat[n:]
	}
	tail = append(tail, hourly.stmts()...)
	var upserts, stale []any
	for k, c := range newest {
		p := prev[k]
		if !p.win {
			continue
		}
		id := resIDs[c.run][c.res]
		upserts = append(upserts, k.relayID, k.mxID, id)
		if p.resultID != 0 && p.resultID != id {
			stale = append(stale, p.resultID)
		}
	}
	if len(upserts) > 0 {
		tail = append(tail, stmt{`INSERT INTO newest_success (relay_id, mx_id, result_id) VALUES ` +
			valueRows(len(upserts)/3, 3) + ` ON CONFLICT (relay_id, mx_id) DO UPDATE SET result_id = excluded.result_id`,
			upserts})
	}
	if len(stale) > 0 {
		tail = append(tail, stmt{`UPDATE results SET transcript = NULL WHERE ok = 1 AND id IN (` +
			placeholders(len(stale)) + `)`, stale})
	}
	if err := s.dialect.execAll(ctx, tx, tail); err != nil {
		return nil, nil, fmt.Errorf("control failures, hourly figures, newest successes: %w", err)
	}
	return runIDs, resIDs, nil
}

// hourKey is relay × hour × outcome: one row of the hourly table.
type hourKey struct {
	relayID, hour int64
	ok            bool
	failure       string
}

// exactMedianMax bounds the successes of one relay-hour whose median
// handshake is recomputed exactly on insert; busier hours (many manual
// checks) fold new results in by weight, keeping inserts O(batch).
const exactMedianMax = 1000

// medianRow is a relay-hour's stored median handshake and the successes
// behind it.
type medianRow struct{ p50, timed int64 }

// batchState is what a batch's writes depend on: per relay × MX the
// stored newest success (its result id and start), the stored medians of
// the relay-hours the batch touches, and the rollup watermark.
type batchState struct {
	newest  map[newestKey][2]int64
	medians map[[2]int64]medianRow
	wm      int64
}

// readBatchState reads the batch's state in one query (a chunk of relays
// at a time): one round trip on PostgreSQL rather than one per kind.
func readBatchState(ctx context.Context, tx *sql.Tx, batch []RunWithResults, relayIDs []int64) (batchState, error) {
	st := batchState{newest: map[newestKey][2]int64{}, medians: map[[2]int64]medianRow{}}
	relaySet := map[int64]bool{}
	minH, maxH := int64(1<<63-1), int64(-1<<63)
	for i := range batch {
		relaySet[relayIDs[i]] = true
		for j := range batch[i].Results {
			if r := &batch[i].Results[j]; r.OK {
				h := floorHour(ms(r.StartedAt))
				minH, maxH = min(minH, h), max(maxH, h)
			}
		}
	}
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(relaySet)), (maxParams-2)/2) {
		args := make([]any, 0, 2*len(chunk)+2)
		for range 2 {
			for _, id := range chunk {
				args = append(args, id)
			}
		}
		args = append(args, minH, maxH)
		in := placeholders(len(chunk))
		// The IN lists come first and the hours last: the placeholders
		// are numbered in that order.
		rows, err := tx.QueryContext(ctx, `
			SELECT 'n', n.relay_id, n.mx_id, n.result_id, r.started_at
			FROM newest_success n JOIN results r ON r.id = n.result_id WHERE n.relay_id IN (`+in+`)
			UNION ALL
			SELECT 'h', relay_id, hour, p50_handshake, timed FROM hourly
			WHERE ok = 1 AND failure = '' AND relay_id IN (`+in+`) AND hour >= ? AND hour <= ?
			UNION ALL
			SELECT 'w', 0, 0, 0, CAST(value AS BIGINT) FROM meta WHERE key = 'rollup_watermark'`, args...)
		if err != nil {
			return st, err
		}
		for rows.Next() {
			var kind string
			var a, b, c, d int64
			if err := rows.Scan(&kind, &a, &b, &c, &d); err != nil {
				rows.Close()
				return st, err
			}
			switch kind {
			case "n":
				st.newest[newestKey{a, b}] = [2]int64{c, d}
			case "h":
				st.medians[[2]int64{a, b}] = medianRow{c, d}
			case "w":
				st.wm = d
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, err
		}
	}
	return st, nil
}

// hourlyUpdate is what a batch adds to the hourly figures: outcome counts
// per relay-hour, and the new median handshake of every relay-hour with
// successes. planHourly reads what it needs before the batch's results
// are stored, and write stores it after, in one statement.
type hourlyUpdate struct {
	counts  map[hourKey]int
	medians map[[2]int64][2]int64 // relay, hour -> p50, timed
}

// planHourly counts a batch's outcomes per relay-hour and computes the
// median handshake of every relay-hour it touches: exactly, from every
// handshake stored and the batch's, while the hour's raw rows are all
// there and not too many; else by weighing the batch's median in. st has
// the stored medians; one more query reads the handshakes of the hours
// recomputed exactly, for the whole batch.
func planHourly(ctx context.Context, tx *sql.Tx, batch []RunWithResults, relayIDs []int64, st batchState) (hourlyUpdate, error) {
	u := hourlyUpdate{counts: map[hourKey]int{}, medians: map[[2]int64][2]int64{}}
	timed := map[[2]int64][]int64{} // relay, hour -> handshakes of this batch
	for i := range batch {
		for j := range batch[i].Results {
			r := &batch[i].Results[j]
			h := floorHour(ms(r.StartedAt))
			k := hourKey{relayID: relayIDs[i], hour: h, ok: r.OK}
			if !r.OK {
				k.failure = string(r.Failure)
			}
			u.counts[k]++
			if r.OK {
				rh := [2]int64{relayIDs[i], h}
				if v := tenths(r.Timings.Handshake); v > 0 {
					timed[rh] = append(timed[rh], v)
				} else if _, ok := timed[rh]; !ok {
					timed[rh] = nil
				}
			}
		}
	}
	if len(timed) == 0 {
		return u, nil
	}
	old, wm := st.medians, st.wm
	// The hours recomputed exactly: every handshake stored so far.
	var exact [][2]int64
	for rh, vals := range timed {
		if rh[1] >= wm && old[rh].timed+int64(len(vals)) <= exactMedianMax {
			exact = append(exact, rh)
		}
	}
	stored := make(map[[2]int64][]int64, len(exact))
	for chunk := range slices.Chunk(exact, maxParams/3) {
		var where []string
		args := make([]any, 0, 3*len(chunk))
		for _, rh := range chunk {
			where = append(where, `(relay_id = ? AND started_at >= ? AND started_at < ?)`)
			args = append(args, rh[0], rh[1], rh[1]+hourMS)
			stored[rh] = []int64{}
		}
		rows, err := tx.QueryContext(ctx, `SELECT relay_id, started_at, t_handshake FROM results
			WHERE ok = 1 AND t_handshake IS NOT NULL AND (`+strings.Join(where, " OR ")+`)`, args...)
		if err != nil {
			return u, err
		}
		for rows.Next() {
			var relayID, at, v int64
			if err := rows.Scan(&relayID, &at, &v); err != nil {
				rows.Close()
				return u, err
			}
			rh := [2]int64{relayID, floorHour(at)}
			stored[rh] = append(stored[rh], v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return u, err
		}
	}
	for rh, vals := range timed {
		if all, ok := stored[rh]; ok {
			all = append(all, vals...)
			slices.Sort(all)
			u.medians[rh] = [2]int64{percentile(all, 50), int64(len(all))}
			continue
		}
		// A busy hour, or late results for a rolled-up one: weigh the
		// batch's median in.
		slices.Sort(vals)
		k := int64(len(vals))
		o := old[rh]
		var p50 int64
		if count := o.timed + k; count > 0 {
			p50 = (o.p50*o.timed + percentile(vals, 50)*k) / count
		}
		u.medians[rh] = [2]int64{p50, o.timed + k}
	}
	return u, nil
}

// stmts are the multi-row upserts that add the counts and set the
// medians.
func (u hourlyUpdate) stmts() []stmt {
	var out []stmt
	args := make([]any, 0, 7*len(u.counts))
	for k, n := range u.counts {
		var m [2]int64
		if k.ok {
			m = u.medians[[2]int64{k.relayID, k.hour}]
		}
		args = append(args, k.relayID, k.hour, k.ok, k.failure, n, m[0], m[1])
	}
	for len(args) > 0 {
		n := min(len(args), 7*maxRowsPerInsert(7))
		out = append(out, stmt{`INSERT INTO hourly (relay_id, hour, ok, failure, n, p50_handshake, timed)
			VALUES ` + valueRows(n/7, 7) + `
			ON CONFLICT (relay_id, hour, ok, failure) DO UPDATE SET n = hourly.n + excluded.n,
				p50_handshake = CASE WHEN excluded.ok = 1 THEN excluded.p50_handshake ELSE hourly.p50_handshake END,
				timed = CASE WHEN excluded.ok = 1 THEN excluded.timed ELSE hourly.timed END`, args[:n:n]})
		args = args[n:]
	}
	return out
}

// resultArgs returns the stored columns of r from started_at on.
func (s *Store) resultArgs(in *interner, r *probe.Result, withTranscript bool) ([]any, error) {
	tlsID, err := in.tlsParams(r.TLS)
	if err != nil {
		return nil, err
	}
	certID, err := in.certChain(r.TLS)
	if err != nil {
		return nil, err
	}
	var hints, transcript any
	if len(r.Hints) > 0 {
		b, err := json.Marshal(r.Hints)
		if err != nil {
			return nil, err
		}
		hints = string(b)
	}
	if withTranscript && len(r.Transcript) > 0 {
		b, err := encodeTranscript(&s.flaters, r.Transcript)
		if err != nil {
			return nil, err
		}
		transcript = b
	}
	t := &r.Timings
	return []any{
		ms(r.StartedAt), r.OK, nullStr(string(r.Stage)), nullStr(string(r.Failure)), nullStr(r.Engine),
		nullStr(r.Error), nullInt(int64(r.SMTPCode)), nullStr(r.SMTPText), tlsID, certID,
		nullInt(tenths(t.DNS)), nullInt(tenths(t.Connect)), nullInt(tenths(t.Banner)), nullInt(tenths(t.EHLO)),
		nullInt(tenths(t.StartTLS)), nullInt(tenths(t.Handshake)), nullInt(tenths(t.PostTLS)), nullInt(tenths(t.Total)),
		hints, transcript,
	}, nil
}

func nullStr(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// encodeTranscript trims a transcript to maxTranscriptLines and deflates
// its JSON form.
// pool holds reusable flate writers (they are large to allocate).
func encodeTranscript(pool *sync.Pool, lines []string) ([]byte, error) {
	if len(lines) > maxTranscriptLines {
		head := maxTranscriptLines / 2
		tail := maxTranscriptLines - head - 1
		trimmed := make([]string, 0, maxTranscriptLines)
		trimmed = append(trimmed, lines[:head]...)
		trimmed = append(trimmed, fmt.Sprintf("%s(%d lines trimmed by storage)", probe.Note, len(lines)-head-tail))
		trimmed = append(trimmed, lines[len(lines)-tail:]...)
		lines = trimmed
	}
	j, err := json.Marshal(lines)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, _ := pool.Get().(*flate.Writer)
	if w == nil {
		if w, err = flate.NewWriter(&buf, flate.BestSpeed); err != nil {
			return nil, err
		}
	} else {
		w.Reset(&buf)
	}
	defer pool.Put(w)
	if _, err := w.Write(j); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxTranscriptBytes bounds what decodeTranscript inflates.
const maxTranscriptBytes = 1 << 20

func decodeTranscript(b []byte) ([]string, error) {
	j, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), maxTranscriptBytes+1))
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	if len(j) > maxTranscriptBytes {
		return nil, errors.New("transcript: larger than 1 MiB inflated")
	}
	var lines []string
	if err := json.Unmarshal(j, &lines); err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	return lines, nil
}

// resultCols are the columns scanResult reads, in order; the caller
// appends "r.transcript" or "NULL".
const resultCols = `r.id, r.run_id, r.relay_id, r.path_id, r.started_at, r.ok, r.stage, r.failure, r.engine,
	r.error, r.smtp_code, r.smtp_text, r.tls_id, r.cert_id, r.t_dns, r.t_connect, r.t_banner, r.t_ehlo,
	r.t_starttls, r.t_handshake, r.t_post_tls, r.t_total, r.hints, ru.trigger`

func selectResults(withTranscript bool) string {
	t := "NULL"
	if withTranscript {
		t = "r.transcript"
	}
	return `SELECT ` + resultCols + `, ` + t + ` FROM results r JOIN runs ru ON ru.id = r.run_id `
}

// scanResults reads every row of rows into StoredResults.
func (s *Store) scanResults(ctx context.Context, q querier, rows *sql.Rows) ([]StoredResult, error) {
	defer rows.Close()
	type raw struct {
		relayID, pathID           int64
		stage, failure, engine    sql.NullString
		errText, smtpText, hints  sql.NullString
		smtpCode, tlsID, certID   sql.NullInt64
		dns, conn, banner, ehlo   sql.NullInt64
		starttls, hs, post, total sql.NullInt64
		startedAt                 int64
		transcript                []byte
	}
	var out []StoredResult
	var raws []raw
	for rows.Next() {
		var sr StoredResult
		var x raw
		var trigger string
		if err := rows.Scan(&sr.ID, &sr.RunID, &x.relayID, &x.pathID, &x.startedAt, &sr.OK, &x.stage, &x.failure, &x.engine,
			&x.errText, &x.smtpCode, &x.smtpText, &x.tlsID, &x.certID, &x.dns, &x.conn, &x.banner, &x.ehlo,
			&x.starttls, &x.hs, &x.post, &x.total, &x.hints, &trigger, &x.transcript); err != nil {
			return nil, err
		}
		sr.Trigger = message.Source(trigger)
		out = append(out, sr)
		raws = append(raws, x)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	// Resolve interned values after the cursor is closed: a lookup may
	// need the same connection.
	for i := range out {
		sr, x := &out[i], &raws[i]
		name, err := s.relayName(ctx, q, x.relayID)
		if err != nil {
			return nil, err
		}
		p, err := s.pathByID(ctx, q, x.pathID)
		if err != nil {
			return nil, err
		}
		sr.Relay = name
		sr.MX, sr.Preference, sr.IP, sr.Port = p.key.mx, p.key.preference, p.key.ip, p.key.port
		sr.SourceIP, sr.ServerName = p.key.sourceIP, p.key.serverName
		sr.StartedAt = fromMS(x.startedAt)
		sr.Stage, sr.Failure, sr.Engine = probe.Stage(x.stage.String), probe.Failure(x.failure.String), x.engine.String
		sr.Error, sr.SMTPCode, sr.SMTPText = x.errText.String, int(x.smtpCode.Int64), x.smtpText.String
		sr.Timings = probe.Timings{
			DNS: fromTenths(x.dns), Connect: fromTenths(x.conn), Banner: fromTenths(x.banner), EHLO: fromTenths(x.ehlo),
			StartTLS: fromTenths(x.starttls), Handshake: fromTenths(x.hs), PostTLS: fromTenths(x.post), Total: fromTenths(x.total),
		}
		if x.tlsID.Valid {
			k, err := s.tlsByID(ctx, q, x.tlsID.Int64)
			if err != nil {
				return nil, err
			}
			sr.TLS = &probe.TLSInfo{Version: k.version, Cipher: k.cipher, Group: k.group, Variant: k.variant, Verified: k.verified}
			if x.certID.Valid {
				c, err := s.certsByID(ctx, q, x.certID.Int64)
				if err != nil {
					return nil, err
				}
				sr.TLS.PeerCertificates = slices.Clone(c)
			}
		}
		sr.Hints = []string{}
		if x.hints.Valid {
			if err := json.Unmarshal([]byte(x.hints.String), &sr.Hints); err != nil {
				return nil, fmt.Errorf("result %d: hints: %w", sr.ID, err)
			}
		}
		if x.transcript != nil {
			if sr.Transcript, err = decodeTranscript(x.transcript); err != nil {
				return nil, fmt.Errorf("result %d: %w", sr.ID, err)
			}
		}
	}
	return out, nil
}

// Result returns one result with its transcript (when kept), or
// ErrNotFound.
func (s *Store) Result(ctx context.Context, id int64) (StoredResult, error) {
	var out []StoredResult
	err := s.read(ctx, "read result", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, selectResults(true)+`WHERE r.id = ?`, id)
		if err != nil {
			return err
		}
		out, err = s.scanResults(ctx, tx, rows)
		return err
	})
	if err != nil {
		return StoredResult{}, err
	}
	if len(out) == 0 {
		return StoredResult{}, fmt.Errorf("storage: result %d: %w (it may have been rolled up by retention)", id, ErrNotFound)
	}
	return out[0], nil
}

// HistoryQuery selects results for History. Zero fields do not filter.
type HistoryQuery struct {
	Relay        string
	Since, Until time.Time // Since inclusive, Until exclusive
	Limit        int       // 0: no limit
	FailuresOnly bool
	// WithTranscript loads kept transcripts too (slower).
	WithTranscript bool
}

// History returns raw results, newest first. Results older than the raw
// retention have been rolled up and are not returned.
func (s *Store) History(ctx context.Context, q HistoryQuery) ([]StoredResult, error) {
	var out []StoredResult
	err := s.read(ctx, "read history", func(tx *sql.Tx) error {
		var where []string
		var args []any
		if q.Relay != "" {
			id, err := s.relayID(ctx, tx, q.Relay)
			if err != nil {
				return err
			}
			where, args = append(where, "r.relay_id = ?"), append(args, id)
		}
		if !q.Since.IsZero() {
			where, args = append(where, "r.started_at >= ?"), append(args, ms(q.Since))
		}
		if !q.Until.IsZero() {
			where, args = append(where, "r.started_at < ?"), append(args, ms(q.Until))
		}
		if q.FailuresOnly {
			where = append(where, "r.ok = 0")
		}
		query := selectResults(q.WithTranscript)
		if len(where) > 0 {
			query += "WHERE " + strings.Join(where, " AND ")
		}
		query += " ORDER BY r.started_at DESC, r.id DESC"
		if q.Limit > 0 {
			query += " LIMIT ?"
			args = append(args, q.Limit)
		}
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		out, err = s.scanResults(ctx, tx, rows)
		return err
	})
	return out, err
}

// Recent returns the input of escalation: for every relay that is not
// retired, the results of its last perRelayRuns runs and every result
// since since (with a zero since, the runs alone bound it), all oldest
// first (by start time, then id). To stay fast it fills only
// what escalation reads: ids, relay, path (MX, preference, IP, port,
// source IP, server name), start, OK, stage, failure, SMTP code, trigger
// and the handshake and total timings; TLS, hints, error text and
// transcript are left empty (Result has them).
func (s *Store) Recent(ctx context.Context, since time.Time, perRelayRuns int) ([]StoredResult, error) {
	// Per relay not retired, the lower bound of its results: since, or
	// the start of its perRelayRuns-th latest run if older (all of its
	// results with fewer runs). A run starts before its results: its
	// start bounds them.
	lower := ms(since)
	if since.IsZero() {
		lower = 1<<63 - 1
	}
	bounds := `SELECT r.id, CAST(?1 AS BIGINT) AS lower_at FROM relays r WHERE r.retired = 0`
	args := []any{lower}
	if perRelayRuns > 0 {
		bounds = `SELECT r.id, COALESCE((SELECT CASE WHEN ru.started_at < ?1 THEN ru.started_at ELSE ?1 END FROM runs ru
			WHERE ru.relay_id = r.id ORDER BY ru.started_at DESC LIMIT 1 OFFSET ?2), ?3) AS lower_at
			FROM relays r WHERE r.retired = 0`
		args = append(args, perRelayRuns-1, int64(-1<<63))
	}
	var out []StoredResult
	err := s.read(ctx, "read recent results", func(tx *sql.Tx) error {
		// Counted first (from the index), so that out is allocated
		// once: grown by append, a slice of 50,000 results would
		// allocate several times its size.
		var total int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM((SELECT COUNT(*) FROM results
			WHERE relay_id = b.id AND started_at >= b.lower_at)), 0) FROM (`+bounds+`) AS b`, args...).Scan(&total); err != nil {
			return err
		}
		out = make([]StoredResult, 0, total)
		var err error
		// CROSS JOIN makes SQLite loop over the relays outside, seeking
		// each one's range in results_relay_time; PostgreSQL plans it as
		// any inner join.
		out, err = s.scanLeanFrom(ctx, tx, out, false, `(`+bounds+`) AS b CROSS JOIN results r`,
			`WHERE r.relay_id = b.id AND r.started_at >= b.lower_at`, args...)
		return err
	})
	slices.SortStableFunc(out, func(a, b StoredResult) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, err
}

// scanLeanWhere appends the results matching where (over results r) with
// the fields Recent documents, in no particular order, their runs' fields
// joined in.
func (s *Store) scanLeanWhere(ctx context.Context, tx querier, out []StoredResult, where string, args ...any) ([]StoredResult, error) {
	return s.scanLeanFrom(ctx, tx, out, true, `results r`, `WHERE `+where, args...)
}

// scanLeanFrom appends the results of from (which names results r) and
// where with the fields Recent documents, in no particular order. With
// joinRuns the runs' fields come in the same query; without, from a
// second one by run id: where from's rows cannot be estimated (bounds
// computed in the query), PostgreSQL would otherwise plan for all of
// them and hash every run.
func (s *Store) scanLeanFrom(ctx context.Context, tx querier, out []StoredResult, joinRuns bool, from, where string, args ...any) ([]StoredResult, error) {
	runCols := `, ru.trigger, ru.started_at, EXISTS (SELECT 1 FROM control_failures c WHERE c.run_id = ru.id)
		FROM ` + from + ` JOIN runs ru ON ru.id = r.run_id `
	if !joinRuns {
		runCols = ` FROM ` + from + ` `
	}
	rows, err := tx.QueryContext(ctx, `SELECT r.id, r.run_id, r.relay_id, r.path_id, r.started_at, r.ok, r.stage, r.failure,
		r.smtp_code, r.t_handshake, r.t_total`+runCols+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	first := len(out)
	var relayIDs, pathIDs []int64
	for rows.Next() {
		out = append(out, StoredResult{})
		sr := &out[len(out)-1]
		var relayID, pathID, at, runAt int64
		var stage, failure sql.NullString
		var code, hs, total sql.NullInt64
		var trigger string
		dest := []any{&sr.ID, &sr.RunID, &relayID, &pathID, &at, &sr.OK, &stage, &failure, &code, &hs, &total}
		if joinRuns {
			dest = append(dest, &trigger, &runAt, &sr.ControlFailed)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		sr.Trigger = message.Source(trigger)
		sr.StartedAt, sr.RunStartedAt = fromMS(at), fromMS(runAt)
		sr.Stage, sr.Failure, sr.SMTPCode = probe.Stage(stage.String), probe.Failure(failure.String), int(code.Int64)
		sr.Timings.Handshake, sr.Timings.Total = fromTenths(hs), fromTenths(total)
		sr.Hints = []string{}
		relayIDs = append(relayIDs, relayID)
		pathIDs = append(pathIDs, pathID)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if !joinRuns {
		if err := fillRuns(ctx, tx, out[first:]); err != nil {
			return nil, err
		}
	}
	for i, pid := range pathIDs {
		name, err := s.relayName(ctx, tx, relayIDs[i])
		if err != nil {
			return nil, err
		}
		p, err := s.pathByID(ctx, tx, pid)
		if err != nil {
			return nil, err
		}
		sr := &out[first+i]
		sr.Relay = name
		sr.MX, sr.Preference, sr.IP, sr.Port = p.key.mx, p.key.preference, p.key.ip, p.key.port
		sr.SourceIP, sr.ServerName = p.key.sourceIP, p.key.serverName
	}
	return out, nil
}

// fillRuns sets the run fields (trigger, start, control failed) of res,
// reading their runs by id.
func fillRuns(ctx context.Context, tx querier, res []StoredResult) error {
	type runInfo struct {
		trigger       string
		at            int64
		controlFailed bool
	}
	runs := map[int64]runInfo{}
	for i := range res {
		runs[res[i].RunID] = runInfo{}
	}
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(runs)), maxParams) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, trigger, started_at,
			EXISTS (SELECT 1 FROM control_failures c WHERE c.run_id = runs.id)
			FROM runs WHERE id IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var ri runInfo
			if err := rows.Scan(&id, &ri.trigger, &ri.at, &ri.controlFailed); err != nil {
				rows.Close()
				return err
			}
			runs[id] = ri
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for i := range res {
		ri := runs[res[i].RunID]
		res[i].Trigger, res[i].RunStartedAt, res[i].ControlFailed = message.Source(ri.trigger), fromMS(ri.at), ri.controlFailed
	}
	return nil
}

// ResultsAfter returns the results stored with an id above afterID (the
// newest first stored last), at most limit of them (limit <= 0: 10,000),
// with the fields Recent fills, by id. A reader that keeps what Recent gave
// it follows new results this way, one indexed read each time, whichever
// process stored them.
func (s *Store) ResultsAfter(ctx context.Context, afterID int64, limit int) ([]StoredResult, error) {
	if limit <= 0 {
		limit = 10_000
	}
	var out []StoredResult
	err := s.readOne(ctx, "read new results", func(tx querier) error {
		var err error
		out, err = s.scanLeanWhere(ctx, tx, nil, `r.id > ? ORDER BY r.id LIMIT ?`, afterID, limit)
		return err
	})
	return out, err
}

// MaxResultID is the highest result id stored (0: none).
func (s *Store) MaxResultID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	err := s.readOne(ctx, "read results", func(tx querier) error {
		return tx.QueryRowContext(ctx, `SELECT MAX(id) FROM results`).Scan(&id)
	})
	return id.Int64, err
}

// LastRun returns a relay's latest run and its results (with kept
// transcripts), or ErrNotFound.
func (s *Store) LastRun(ctx context.Context, relay string) (Run, []StoredResult, error) {
	var run Run
	var res []StoredResult
	err := s.read(ctx, "read last run", func(tx *sql.Tx) error {
		id, err := s.relayID(ctx, tx, relay)
		if err != nil {
			return err
		}
		var started int64
		var trigger string
		err = tx.QueryRowContext(ctx, `SELECT id, trigger, requested_by, started_at,
			EXISTS (SELECT 1 FROM control_failures c WHERE c.run_id = runs.id) FROM runs
			WHERE relay_id = ? ORDER BY started_at DESC, id DESC LIMIT 1`, id).
			Scan(&run.ID, &trigger, &run.RequestedBy, &started, &run.ControlFailed)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: relay %q has no probe runs yet", ErrNotFound, relay)
		}
		if err != nil {
			return err
		}
		run.Relay, run.StartedAt, run.Trigger = relay, fromMS(started), message.Source(trigger)
		rows, err := tx.QueryContext(ctx, selectResults(true)+`WHERE r.run_id = ? ORDER BY r.id`, run.ID)
		if err != nil {
			return err
		}
		res, err = s.scanResults(ctx, tx, rows)
		return err
	})
	return run, res, err
}

// maxParams bounds the parameters of one multi-row statement, well under
// both engines' limits (SQLite 32,766, PostgreSQL 65,535).
const maxParams = 2000

// maxRowsPerInsert is how many rows of cols columns one statement takes.
func maxRowsPerInsert(cols int) int { return max(1, maxParams/cols) }

// placeholders returns n comma-separated placeholders.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// valueRows returns the VALUES list of n rows of cols placeholders.
func valueRows(n, cols int) string {
	row := "(" + placeholders(cols) + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// insertRows inserts rows (each the values of head's columns) with
// multi-row INSERT statements, a few hundred rows per statement (one round
// trip each on PostgreSQL), and returns their new ids in the order of
// rows. The ids one statement assigns ascend in the order of its VALUES
// on both engines (SQLite's rowids, PostgreSQL's identity sequence) and
// RETURNING's own order is not promised, so they are sorted.
func insertRows(ctx context.Context, tx *sql.Tx, head string, rows [][]any) ([]int64, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	cols := len(rows[0])
	per := maxRowsPerInsert(cols)
	ids := make([]int64, 0, len(rows))
	args := make([]any, 0, min(len(rows), per)*cols)
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), per)]
		rows = rows[len(chunk):]
		args = args[:0]
		for _, r := range chunk {
			args = append(args, r...)
		}
		q, err := tx.QueryContext(ctx, head+` VALUES `+valueRows(len(chunk), cols)+` RETURNING id`, args...)
		if err != nil {
			return nil, err
		}
		first := len(ids)
		for q.Next() {
			var id int64
			if err := q.Scan(&id); err != nil {
				q.Close()
				return nil, err
			}
			ids = append(ids, id)
		}
		q.Close()
		if err := q.Err(); err != nil {
			return nil, err
		}
		if len(ids)-first != len(chunk) {
			return nil, fmt.Errorf("inserted %d rows, got %d ids back", len(chunk), len(ids)-first)
		}
		slices.Sort(ids[first:])
	}
	return ids, nil
}
