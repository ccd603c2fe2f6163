// Command gen fills a gmailtls database with a synthetic history, for
// benchmarks and for trying reports on a realistic file:
//
//	go run ./storage/cmd/gen -db /tmp/year.db -relays 20 -mx 5 -ips 2 -every 5m -days 365
//
// With -driver postgres it fills the PostgreSQL database whose connection
// string is in the variable -dsn-env names (GMAILTLS_POSTGRES_DSN) instead.
//
// The last -raw days are stored as raw results (batched inserts); the
// older part directly as the hourly rollups retention would have left.
// Never point it at a production database.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	db := fs.String("db", "", "database file to create or extend (required for sqlite)")
	driver := fs.String("driver", storage.EngineSQLite, "storage engine: sqlite or postgres")
	dsnEnv := fs.String("dsn-env", "GMAILTLS_POSTGRES_DSN", "for postgres: the variable holding the connection string")
	relays := fs.Int("relays", 20, "number of relays")
	mx := fs.Int("mx", 5, "MX hosts")
	ips := fs.Int("ips", 2, "addresses per MX host")
	every := fs.Duration("every", 5*time.Minute, "probing interval")
	days := fs.Int("days", 365, "days of history")
	raw := fs.Int("raw", 30, "most recent days kept as raw results")
	rate := fs.Float64("failure-rate", 0.002, "share of failed probes")
	batch := fs.Int("batch", 200, "runs per transaction")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	opts := storage.Options{Driver: *driver}
	switch {
	case *driver == storage.EnginePostgres:
		if opts.DSN = os.Getenv(*dsnEnv); opts.DSN == "" {
			fmt.Fprintf(os.Stderr, "gen: driver postgres: set %s to the connection string\n", *dsnEnv)
			return 2
		}
	case *db == "":
		fmt.Fprintln(os.Stderr, "gen: -db FILE is required")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts.Logger = log
	s, err := storage.Open(ctx, *db, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		return 1
	}
	defer s.Close()
	begin := time.Now()
	lastReport := begin
	st, err := s.Generate(ctx, storage.GenerateOptions{
		Relays: *relays, MX: *mx, IPs: *ips, Every: *every, Days: *days, RawDays: *raw,
		FailureRate: *rate, Seed: *seed, BatchRuns: *batch,
		Progress: func(n int) {
			if time.Since(lastReport) >= 5*time.Second {
				lastReport = time.Now()
				el := time.Since(begin)
				fmt.Fprintf(os.Stderr, "gen: %d raw results in %s\n", n, el.Round(time.Second))
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		return 1
	}
	el := time.Since(begin)
	fmt.Printf("gen: %s: %d runs, %d raw results (since %s), %d hourly rollups in %s (%.0f results/s)\n",
		s.Path(), st.Runs, st.Results, st.RawSince.Format(time.RFC3339), st.Rollups, el.Round(time.Millisecond),
		float64(st.Results)/el.Seconds())
	return 0
}
