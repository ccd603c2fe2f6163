package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/storage"
)

func TestBackupCopiesHistory(t *testing.T) {
	cfgPath, _ := svcTestSetup(t)
	svcTestConsole(t, cfgPath, "check relay-1")
	dst := filepath.Join(t.TempDir(), "copy.db")
	code, out, errs := svcTestRun(t, "", "backup", "--config", cfgPath, "--to", dst)
	if code != exitOK || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: exit %d %q %q", code, out, errs)
	}
	st, err := storage.Open(context.Background(), dst, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	run, res, err := st.LastRun(context.Background(), "relay-1")
	if err != nil || len(res) == 0 || run.Relay != "relay-1" {
		t.Fatalf("the copy lacks relay-1's run: %+v %d %v", run, len(res), err)
	}
	// A second backup to the same file is refused, not overwritten.
	if code, _, errs := svcTestRun(t, "", "backup", "--config", cfgPath, "--to", dst); code != exitFailed || errs == "" {
		t.Errorf("backup over an existing file: exit %d %q", code, errs)
	}
	if code, _, _ := svcTestRun(t, "", "backup", "--config", cfgPath); code != exitUsage {
		t.Errorf("backup without --to: exit %d, want 2", code)
	}
}
