package monitor

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// BenchmarkEvaluateAfterOneResult is issue 3's "escalation evaluation after
// one new result" on the path the bot runs, on each storage engine (a SQLite
// file, and a database on internal/pglab's PostgreSQL): three days of
// generated history (20 relays × 5 MX × 2 IPs every 5 minutes, 172,800 raw
// results), one new run of one result stored (not timed), then
// Monitor.Evaluate: reading what escalation needs from the database,
// evaluating, comparing with the levels already announced. Goal: under
// 1 ms per operation on SQLite, and PostgreSQL within twice SQLite's figure.
func BenchmarkEvaluateAfterOneResult(b *testing.B) {
	b.Run(storage.EngineSQLite, func(b *testing.B) {
		benchEvaluateAfterOneResult(b, filepath.Join(b.TempDir(), "gmailtls.db"), storage.Options{})
	})
	b.Run(storage.EnginePostgres, func(b *testing.B) {
		benchEvaluateAfterOneResult(b, "", storage.Options{Driver: storage.EnginePostgres, DSN: pglab.NewDatabase(b)})
	})
}

func benchEvaluateAfterOneResult(b *testing.B, path string, opts storage.Options) {
	ctx := context.Background()
	end := time.Date(2026, 3, 2, 10, 37, 0, 0, time.UTC)
	clock := manualclock.New(end)
	opts.Now = clock.Now
	store, err := storage.Open(ctx, path, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Generate(ctx, storage.GenerateOptions{Days: 3, RawDays: 3, End: end, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	rels, err := store.Relays(ctx, false)
	if err != nil || len(rels) != 20 {
		b.Fatalf("%d relays generated: %v", len(rels), err)
	}
	cfg := config.Default()
	cfg.Relays = nil
	runners := map[string]relay.Runner{}
	for _, r := range rels {
		cfg.Relays = append(cfg.Relays, config.Relay{Name: r.Name, Kind: relay.KindLocal})
		runners[r.Name] = relay.NewLocal(r.Name, probe.Config{Relay: r.Name}, nil)
	}
	m := New(Deps{Config: cfg, Store: store, Runners: runners, Now: clock.Now})
	if _, err := m.Evaluate(ctx); err != nil { // the cold start's replay
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		clock.Advance(time.Second)
		name := rels[i%len(rels)].Name
		res := probe.Result{Relay: name, Engine: probe.EngineNative, MX: "alt1.gmail-smtp-in.l.google.com", IP: "192.0.2.1", Port: 25,
			StartedAt: clock.Now(), OK: i%7 != 0, Timings: probe.Timings{Connect: 10, Handshake: 40, Total: 120}, Hints: []string{}}
		if !res.OK {
			res.Stage, res.Failure = probe.StageHandshake, probe.FailTLSReset
		}
		if _, _, err := store.RecordRun(ctx, storage.Run{Relay: name, Trigger: message.SourceSchedule, StartedAt: clock.Now()}, []probe.Result{res}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := m.Evaluate(ctx); err != nil {
			b.Fatal(err)
		}
	}
	_ = fmt.Sprint()
}
