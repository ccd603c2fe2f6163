package storage

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/jackc/pgx/v5"
)

// benchDBEnv points the benchmarks at a database made beforehand, e.g. a
// full year from `go run ./storage/cmd/gen -db /tmp/year.db`; without it
// they generate a smaller but representative one once per test binary
// (20 relays × 5 MX × 2 IPs every 5 minutes, 3 raw days and 27 days of
// rollups).
const benchDBEnv = "GMAILTLS_BENCH_DB"

// benchPostgresEnv is benchDBEnv for PostgreSQL: the connection string of
// a database filled beforehand, e.g. with `GMAILTLS_POSTGRES_DSN=...
// go run ./storage/cmd/gen -driver postgres -days 365`.
const benchPostgresEnv = "GMAILTLS_BENCH_POSTGRES"

// benchEnd is the end of generated benchmark histories.
var benchEnd = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// benchData is one engine's generated benchmark database.
type benchData struct {
	once sync.Once
	loc  string // path or DSN
	end  time.Time
	err  error
}

// benchShared holds each engine's generated database across benchmark
// functions.
var benchShared = map[string]*benchData{EngineSQLite: {}, EnginePostgres: {}}

// benchCluster is the durable PostgreSQL cluster of the benchmarks (fsync
// on, as a production server runs), started on first use and stopped by
// TestMain. The tests' clusters run with fsync off.
var benchCluster struct {
	once sync.Once
	c    *pglab.Cluster
	err  error
}

// benchPostgres returns the connection string of a new database on the
// durable benchmark cluster.
func benchPostgres(tb testing.TB) string {
	tb.Helper()
	pglab.Require(tb)
	benchCluster.once.Do(func() {
		benchCluster.c, benchCluster.err = pglab.Launch(context.Background(), pglab.Options{Durable: true})
	})
	if benchCluster.err != nil {
		tb.Fatal(benchCluster.err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, benchCluster.c.DSN)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		tb.Fatal(err)
	}
	u, err := url.Parse(benchCluster.c.DSN)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// benchEngines are the engines of the benchmarks: SQLite in a temporary
// file, PostgreSQL on the durable cluster.
var benchEngines = []engine{sqliteEngine, {name: EnginePostgres, fresh: benchPostgres}}

// forEachBenchEngine runs f as a sub-benchmark per engine: "sqlite" and
// "postgres".
func forEachBenchEngine(b *testing.B, f func(b *testing.B, e engine)) {
	for _, e := range benchEngines {
		b.Run(e.name, func(b *testing.B) { f(b, e) })
	}
}

// cpuTime returns the process's user+system CPU time so far. The machine
// benchmarks run on may be shared: CPU time per operation is reported
// beside wall time so that figures taken under load stay comparable.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports CPU milliseconds per operation when stopped.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) *cpuMeter { return &cpuMeter{b: b, start: cpuTime(b)} }

func (m *cpuMeter) perOp() time.Duration { return (cpuTime(m.b) - m.start) / time.Duration(m.b.N) }

func (m *cpuMeter) report() {
	m.b.ReportMetric(float64(m.perOp().Microseconds())/1000, "cpu-ms/op")
}

// TestMain runs the tests with a private PostgreSQL cluster for the
// postgres subtests (started on first use, see internal/pglab) and removes
// the generated benchmark database, if any.
func TestMain(m *testing.M) {
	code := pglab.Main(m)
	if p := benchShared[EngineSQLite].loc; p != "" {
		os.RemoveAll(filepath.Dir(p))
	}
	if benchCluster.c != nil {
		_ = benchCluster.c.Stop()
	}
	os.Exit(code)
}

// benchDB returns e's generated history database and its end time.
func benchDB(b *testing.B, e engine) (string, time.Time) {
	b.Helper()
	env := benchDBEnv
	if e.name == EnginePostgres {
		env = benchPostgresEnv
	}
	if p := os.Getenv(env); p != "" {
		s, err := e.openErr(context.Background(), p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		h, err := s.History(context.Background(), HistoryQuery{Limit: 1})
		if err != nil || len(h) == 0 {
			b.Fatalf("%s: no history (%v)", s.Path(), err)
		}
		return p, h[0].StartedAt.Add(time.Minute)
	}
	d := benchShared[e.name]
	d.once.Do(func() {
		if e.name == EngineSQLite {
			dir, err := os.MkdirTemp("", "gmailtls-bench-")
			if err != nil {
				d.err = err
				return
			}
			d.loc = filepath.Join(dir, "history.db")
		} else {
			d.loc = e.fresh(b)
		}
		s, err := e.openErr(context.Background(), d.loc, Options{})
		if err != nil {
			d.err = err
			return
		}
		defer s.Close()
		start := time.Now()
		// End mid-hour, as "now" usually is: summaries then read two
		// partial hours from raw rows.
		st, err := s.Generate(context.Background(), GenerateOptions{Days: 30, RawDays: 3, End: benchEnd.Add(37 * time.Minute), Seed: 1})
		d.err = err
		d.end = benchEnd.Add(37 * time.Minute)
		fmt.Fprintf(os.Stderr, "bench: generated %d raw results and %d rollups in %s into %s\n",
			st.Results, st.Rollups, time.Since(start).Round(time.Millisecond), s.Path())
	})
	if d.err != nil {
		b.Fatal(d.err)
	}
	return d.loc, d.end
}

// BenchmarkSummary24h measures the 24-hour status summary of all relays
// (goal: under 50 ms).
func BenchmarkSummary24h(b *testing.B) {
	forEachBenchEngine(b, func(b *testing.B, e engine) {
		path, end := benchDB(b, e)
		s := e.open(b, path, nil)
		ctx := context.Background()
		cpu := startCPU(b)
		for b.Loop() {
			sums, err := s.Summary(ctx, end.Add(-24*time.Hour), end)
			if err != nil {
				b.Fatal(err)
			}
			if len(sums) == 0 || sums[0].Attempts == 0 {
				b.Fatalf("empty summary %+v", sums)
			}
		}
		cpu.report()
	})
}

// BenchmarkSummary30d is the same over 30 days: raw rows and rollups.
func BenchmarkSummary30d(b *testing.B) {
	forEachBenchEngine(b, func(b *testing.B, e engine) {
		path, end := benchDB(b, e)
		s := e.open(b, path, nil)
		ctx := context.Background()
		cpu := startCPU(b)
		for b.Loop() {
			if _, err := s.Summary(ctx, end.AddDate(0, 0, -30), end); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report()
	})
}

// BenchmarkRecent measures the read of escalation's whole input, which the
// bot makes at start and hourly (between, it follows new results with
// ResultsAfter): the last 10 runs per relay and everything of the last
// hour.
func BenchmarkRecent(b *testing.B) {
	forEachBenchEngine(b, func(b *testing.B, e engine) {
		path, end := benchDB(b, e)
		s := e.open(b, path, nil)
		ctx := context.Background()
		cpu := startCPU(b)
		n := 0
		for b.Loop() {
			res, err := s.Recent(ctx, end.Add(-time.Hour), 10)
			if err != nil {
				b.Fatal(err)
			}
			if len(res) == 0 {
				b.Fatal("no recent results")
			}
			n = len(res)
		}
		cpu.report()
		b.ReportMetric(float64(n), "results/op")
	})
}

// benchRuns builds n runs of 10 results each (5 MX × 2 IPs), one failure
// in 500, one second apart from start, rotating over 20 relays from
// relay number first.
func benchRuns(n, first int, start time.Time) []RunWithResults {
	base := okResult("relay-01", mx1, "192.0.2.1", "", start)
	var out []RunWithResults
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second)
		relay := fmt.Sprintf("relay-%02d", (first+i)%20+1)
		rw := RunWithResults{Run: Run{Relay: relay, Trigger: message.SourceSchedule, StartedAt: at}}
		for j := range 10 {
			r := base
			r.Relay, r.StartedAt = relay, at.Add(time.Duration(j)*time.Millisecond)
			r.MX = fmt.Sprintf("alt%d.gmail-smtp-in.l.google.com", j/2)
			r.IP = fmt.Sprintf("192.0.2.%d", j+1)
			r.Timings.Handshake = 30 + float64((i*7+j*13)%400)/10
			if (i*10+j)%500 == 0 {
				r = failResult(relay, r.MX, r.IP, "", r.StartedAt, probe.FailTLSReset)
			}
			rw.Results = append(rw.Results, r)
		}
		out = append(out, rw)
	}
	return out
}

// BenchmarkRecordBatch measures batched inserts (goal: at least 20,000
// results per second): 200 runs of 10 results per transaction.
func BenchmarkRecordBatch(b *testing.B) {
	forEachBenchEngine(b, func(b *testing.B, e engine) {
		s := e.open(b, "", nil)
		ctx := context.Background()
		start := benchEnd
		results := 0
		cpu := startCPU(b)
		for b.Loop() {
			batch := benchRuns(200, 0, start)
			start = start.Add(200 * time.Second)
			if err := s.RecordRuns(ctx, batch); err != nil {
				b.Fatal(err)
			}
			results += 200 * 10
		}
		b.ReportMetric(float64(results)/b.Elapsed().Seconds(), "results/s")
		b.ReportMetric(float64(results)/(cpu.perOp()*time.Duration(b.N)).Seconds(), "results/cpu-s")
	})
}

// BenchmarkRecordRun measures one run of 10 results per transaction, the
// shape of scheduled probing (20 relays every 5 minutes: a run every 15 s).
func BenchmarkRecordRun(b *testing.B) {
	forEachBenchEngine(b, func(b *testing.B, e engine) {
		s := e.open(b, "", nil)
		ctx := context.Background()
		start := benchEnd
		results := 0
		cpu := startCPU(b)
		for b.Loop() {
			rw := benchRuns(1, results/10, start)[0]
			start = start.Add(15 * time.Second)
			if _, _, err := s.RecordRun(ctx, rw.Run, rw.Results); err != nil {
				b.Fatal(err)
			}
			results += len(rw.Results)
		}
		b.ReportMetric(float64(results)/b.Elapsed().Seconds(), "results/s")
		b.ReportMetric(float64(results)/(cpu.perOp()*time.Duration(b.N)).Seconds(), "results/cpu-s")
	})
}

// BenchmarkBytesPerResult stores 100,000 successful results of the
// scheduled shape (one run of 10 per 5 minutes per relay; transcripts only
// for the newest success per relay × MX) and reports the file size per
// result after VACUUM (goal: under 200 bytes).
func BenchmarkBytesPerResult(b *testing.B) {
	forEachBenchEngine(b, func(b *testing.B, e engine) {
		ctx := context.Background()
		for b.Loop() {
			b.StopTimer()
			s := e.open(b, "", nil)
			const runs = 10_000
			start := benchEnd
			for i := 0; i < runs; i += 500 {
				batch := benchRuns(500, 0, start)
				for k := range batch {
					batch[k].Run.StartedAt = start.Add(time.Duration((i+k)/20) * 5 * time.Minute)
					for j := range batch[k].Results {
						r := &batch[k].Results[j]
						*r = okResult(r.Relay, r.MX, r.IP, "", batch[k].Run.StartedAt.Add(time.Duration(j)*37*time.Millisecond))
						r.Timings.Handshake = 30 + float64((i+k*7+j*13)%400)/10
					}
				}
				b.StartTimer()
				if err := s.RecordRuns(ctx, batch); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
			}
			size := storedBytes(b, s)
			b.ReportMetric(float64(size)/float64(runs*10), "bytes/result")
			s.Close()
			b.StartTimer()
		}
	})
}

// storedBytes vacuums s's database and returns its size: the file's on
// SQLite, the tables' and indexes' on PostgreSQL (its catalog left out).
func storedBytes(b *testing.B, s *Store) int64 {
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, "VACUUM"); err != nil {
		b.Fatal(err)
	}
	if s.Engine() == EnginePostgres {
		var size int64
		if err := s.db.QueryRowContext(ctx, `SELECT CAST(sum(pg_total_relation_size(c.oid)) AS BIGINT)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relkind = 'r'`).Scan(&size); err != nil {
			b.Fatal(err)
		}
		return size
	}
	var pages, size int64
	if err := s.db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		b.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		b.Fatal(err)
	}
	return pages * size
}
