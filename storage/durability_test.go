package storage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

// durabilityEnv names the database the child of TestDurabilitySIGKILL
// writes to; it is only ever set by that test for its own child.
const durabilityEnv = "GMAILTLS_STORAGE_DURABILITY_CHILD_DB"

// TestDurabilitySIGKILL re-executes the test binary as a child that writes
// results in a loop and prints every id once its transaction committed.
// The child is killed with SIGKILL mid-stream; the reopened file must pass
// the integrity check and hold every id the child reported.
func TestDurabilitySIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "durable.db")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDurabilityChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), durabilityEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 300
	var resultIDs, messageKeys []string
	commits := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "results":
			resultIDs = append(resultIDs, f[1:]...)
		case "message":
			messageKeys = append(messageKeys, f[1])
		default:
			continue
		}
		commits++
		if commits == killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Keep reading: lines printed before the kill count too.
		}
	}
	werr := cmd.Wait()
	if commits < killAfter {
		t.Fatalf("child stopped after %d commits: %v", commits, werr)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v", werr)
	}

	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, v := range resultIDs {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Result(context.Background(), id); err != nil {
			t.Fatalf("result %d reported committed is missing: %v", id, err)
		}
	}
	for _, k := range messageKeys {
		if _, ok, err := s.MessageByKey(context.Background(), k); err != nil || !ok {
			t.Fatalf("message %s reported committed is missing: %v", k, err)
		}
	}
	t.Logf("killed after %d reported commits (%d results, %d messages); all present", commits, len(resultIDs), len(messageKeys))
}

// TestDurabilityChild is the child of TestDurabilitySIGKILL; it does
// nothing in a normal run.
func TestDurabilityChild(t *testing.T) {
	path := os.Getenv(durabilityEnv)
	if path == "" {
		t.Skip("runs only as the child of TestDurabilitySIGKILL")
	}
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	w := bufio.NewWriter(os.Stdout)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1_000_000; i++ {
		at = at.Add(time.Second)
		var line string
		switch i % 3 {
		case 0, 1:
			res := []probe.Result{okResult("relay-1", mx1, "192.0.2.1", "", at), failResult("relay-1", mx2, "192.0.2.2", "", at, probe.FailTLSReset)}
			_, ids, err := s.RecordRun(ctx, Run{Relay: "relay-1", Trigger: message.SourceSchedule, StartedAt: at}, res)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			line = fmt.Sprintf("results %d %d", ids[0], ids[1])
		case 2:
			key := fmt.Sprintf("alert:%d", i)
			if _, _, err := s.Enqueue(ctx, OutboxMessage{Key: key, Kind: KindAlert, Channel: "C1", Payload: []byte(`{}`)}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			line = "message " + key
		}
		// Only after the commit returned is the id reported.
		w.WriteString(line + "\n")
		if err := w.Flush(); err != nil {
			os.Exit(0) // the parent went away
		}
	}
	os.Exit(0)
}
