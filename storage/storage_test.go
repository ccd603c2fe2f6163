package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func openTest(t testing.TB, path string, c *manualclock.Clock) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "gmailtls.db")
	}
	opts := Options{}
	if c != nil {
		opts.Now = c.Now
	}
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// okResult builds a successful result toward mx from relay.
func okResult(relay, mx, ip, src string, at time.Time) probe.Result {
	return probe.Result{
		Relay: relay, Engine: probe.EngineNative, SourceIP: src, MX: mx, Preference: 5, IP: ip, Port: 25,
		StartedAt: at, OK: true, SMTPCode: 221, Hints: []string{},
		TLS: &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_256_GCM_SHA384", Group: "X25519MLKEM768", Verified: true,
			PeerCertificates: []probe.Certificate{{Subject: "CN=mx.google.com", Issuer: "CN=WR2,O=Google Trust Services,C=US",
				SANs: []string{"mx.google.com", "gmail-smtp-in.l.google.com"}, NotAfter: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), DaysLeft: 59}}},
		Timings:    probe.Timings{Connect: 12.3, Banner: 40.1, EHLO: 20.2, StartTLS: 20.5, Handshake: 45.6, PostTLS: 20.1, Total: 160.8},
		Transcript: []string{"S: 220 mx.google.com ESMTP x - gsmtp", "C: EHLO relay.example", "S: 250-mx.google.com at your service", "S: 250 STARTTLS", "C: STARTTLS", "S: 220 2.0.0 Ready to start TLS", "* TLS handshake completed", "C: QUIT"},
	}
}

func failResult(relay, mx, ip, src string, at time.Time, f probe.Failure) probe.Result {
	r := okResult(relay, mx, ip, src, at)
	r.OK, r.Failure, r.Stage, r.TLS = false, f, probe.StageHandshake, nil
	r.Error = "read tcp: connection reset by peer"
	r.Hints = []string{"large ClientHello dropped?"}
	r.Transcript = append(r.Transcript[:6:6], "* TLS handshake started", "* connection reset")
	return r
}

func TestOpenPragmasAndReopen(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		c := manualclock.New(t0)
		s := e.open(t, path, c)
		if e.name == EnginePostgres {
			var v int
			if err := s.db.QueryRowContext(ctx, "SELECT version FROM "+pgSchemaTable).Scan(&v); err != nil || v != SchemaVersion() {
				t.Errorf("schema version %d (%v), want %d", v, err, SchemaVersion())
			}
		}
		for _, q := range []struct{ pragma, want string }{
			{"journal_mode", "wal"}, {"foreign_keys", "1"}, {"synchronous", "1"}, {"busy_timeout", "5000"},
			{"user_version", fmt.Sprint(len(migrations()))},
		} {
			if e.name != EngineSQLite {
				break
			}
			// Ask several pooled connections: every one must carry the pragmas.
			for range 3 {
				var got string
				if err := s.db.QueryRowContext(ctx, "PRAGMA "+q.pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != q.want {
					t.Errorf("PRAGMA %s = %s, want %s", q.pragma, got, q.want)
				}
			}
		}
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1", Kind: "local"}}); err != nil {
			t.Fatal(err)
		}
		runID, ids, err := s.RecordRun(ctx, Run{Relay: "relay-1", Trigger: message.SourceCLI, StartedAt: t0},
			[]probe.Result{okResult("relay-1", "gmail-smtp-in.l.google.com", "192.0.2.1", "", t0)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := e.open(t, path, c)
		run, res, err := s2.LastRun(ctx, "relay-1")
		if err != nil {
			t.Fatal(err)
		}
		if run.ID != runID || len(res) != 1 || res[0].ID != ids[0] || !res[0].OK {
			t.Fatalf("after reopen: run %+v results %+v", run, res)
		}
	})
}

func TestResultRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		in := []probe.Result{
			okResult("relay-1", "gmail-smtp-in.l.google.com", "192.0.2.1", "198.51.100.1", t0),
			failResult("relay-1", "alt1.gmail-smtp-in.l.google.com", "192.0.2.2", "198.51.100.1", t0.Add(time.Second), probe.FailTLSReset),
		}
		_, ids, err := s.RecordRun(ctx, Run{Relay: "relay-1", Trigger: message.SourceSlash, RequestedBy: "U1"}, in)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			got, err := s.Result(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := in[i]
			if got.Trigger != message.SourceSlash {
				t.Errorf("trigger %q", got.Trigger)
			}
			gotJSON, wantJSON := mustJSON(t, got.Result), mustJSON(t, want)
			if gotJSON != wantJSON {
				t.Errorf("result %d:\n got %s\nwant %s", i, gotJSON, wantJSON)
			}
		}
		if _, err := s.Result(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing result: %v", err)
		}
		if slices.Contains(ids, 0) {
			t.Error("zero id")
		}
	})
}

func TestPingWritesAndFailsOnReadOnlyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping on a fresh database: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("second ping: %v", err)
	}
	s.Close()
	if os.Geteuid() == 0 {
		t.Skip("root writes read-only files; the read-only case needs another user")
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, Options{})
	if err != nil {
		return // refusing to open a read-only database is as good
	}
	defer s.Close()
	if err := s.Ping(ctx); err == nil {
		t.Error("ping succeeded on a read-only database file")
	}
}
