package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/monitor"
)

// runEnv runs a subcommand in-process with an environment and a context.
func runEnv(ctx context.Context, t *testing.T, environ map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code = dispatch(ctx, e, args)
	return code, out.String(), errb.String()
}

// TestCLITwinsText runs the CLI twin of every chat command against a real
// STARTTLS server on loopback and compares the masked text with a golden
// file: plain text for a terminal, no chat markup, no buttons.
func TestCLITwinsText(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	var all strings.Builder
	run := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errs := svcTestRun(t, "", append(args, "--config", cfgPath)...)
		if code != wantCode || errs != "" {
			t.Fatalf("%v: exit %d, want %d and nothing on stderr\n%s\n%s", args, code, wantCode, out, errs)
		}
		fmt.Fprintf(&all, "$ gmailtls %s\n%s\n", strings.Join(args, " "), out)
		return out
	}
	run(exitOK, "check", "relay-1")
	srv.SetBehavior(smtptest.ResetAfterReady)
	run(exitFailed, "check", "relay-2", "--mx", "127.0.0.1")
	srv.SetBehavior(smtptest.Gmail)
	run(exitOK, "check", "all")
	run(exitOK, "status")
	run(exitOK, "history", "relay-2", "24h")
	run(exitOK, "evidence", "relay-2")
	run(exitOK, "relays")
	run(exitOK, "report")
	run(exitOK, "pause", "relay-3", "2h")
	run(exitOK, "resume", "relay-3")
	text := all.String()
	for _, bad := range []string{"`", "(only you)", "[1] Re-run", "gmailtls>"} {
		if strings.Contains(text, bad) {
			t.Errorf("the CLI text shows %q", bad)
		}
	}
	consoleGolden(t, "cli_twins.txt", maskTable(maskConsole(text)))
}

// maskTable makes history's table stable: its columns are aligned to
// their widest cell, and the MS column varies from run to run, so the
// rows are written with " | " between cells and MS masked (and the run of
// a success, from check all).
func maskTable(s string) string {
	lines := strings.Split(s, "\n")
	gap := regexp.MustCompile(` {2,}`)
	for i, l := range lines {
		f := gap.Split(strings.TrimSpace(l), -1)
		if len(f) != 13 || (f[0] != "TIME" && f[0] != "<TIME>") {
			continue
		}
		if f[0] != "TIME" {
			f[10] = "<MS>"
			if f[2] == "✓" {
				f[11] = "<RUN>" // check all's runs are numbered as the relays finish
			}
		}
		lines[i] = strings.Join(f, " | ")
	}
	return strings.Join(lines, "\n")
}

// TestCLITwinsJSON: every twin prints the data behind its answer with
// --json; the shape of each (its keys and their types) is a golden file,
// and the facts are checked through the commands models.
func TestCLITwinsJSON(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	srv.SetBehavior(smtptest.ResetAfterReady)
	var shapes strings.Builder
	run := func(wantCode int, into any, args ...string) {
		t.Helper()
		code, out, errs := svcTestRun(t, "", append(args, "--config", cfgPath, "--json")...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\n%s", args, code, wantCode, errs)
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if err := json.Unmarshal([]byte(out), into); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		fmt.Fprintf(&shapes, "$ gmailtls %s --json\n%s\n", strings.Join(args, " "), strings.Join(jsonShape(v), "\n"))
	}
	var check commands.CheckModel
	run(exitFailed, &check, "check", "relay-2")
	if len(check.Relays) != 1 || check.Relays[0].OK || check.Relays[0].Level != "watch" || check.Relays[0].RunID == 0 ||
		len(check.Relays[0].Report.Results) != 1 || check.Relays[0].Report.Results[0].Failure != "tls_reset" ||
		len(check.Relays[0].Changes) == 0 || check.Global.Level != "watch" {
		t.Errorf("check relay-2 --json: %+v", check)
	}
	srv.SetBehavior(smtptest.Gmail)
	var checkAll commands.CheckModel
	run(exitOK, &checkAll, "check", "all")
	if len(checkAll.Relays) != 3 || !checkAll.Relays[2].OK || checkAll.Relays[2].Relay != "relay-3" {
		t.Errorf("check all --json: %+v", checkAll)
	}
	var status monitor.StatusModel
	run(exitOK, &status, "status")
	if len(status.Relays) != 3 || status.Relays[1].Level != "watch" {
		t.Errorf("status --json: %+v", status)
	}
	var hist commands.HistoryModel
	run(exitOK, &hist, "history", "relay-2", "24h")
	if hist.Relay != "relay-2" || len(hist.Results) != 2 || hist.Results[1].OK || hist.Results[1].Transcript == nil {
		t.Errorf("history relay-2 24h --json: %+v", hist)
	}
	var ev monitor.EvidenceModel
	run(exitOK, &ev, "evidence", "relay-2")
	if ev.Relay != "relay-2" || ev.Kind != "local" || ev.RunID != check.Relays[0].RunID || len(ev.Results) != 1 || (ev.Host == nil || ev.Host.Hostname == "") && ev.ThisHost == "" {
		t.Errorf("evidence relay-2 --json: %+v", ev)
	}
	var relays commands.RelayListing
	run(exitOK, &relays, "relays")
	if len(relays.Relays) != 3 || relays.Relays[1].Level != "watch" {
		t.Errorf("relays --json: %+v", relays)
	}
	var report monitor.SummaryModel
	run(exitOK, &report, "report", "7d")
	if report.Window != "7d" || len(report.Relays) != 3 {
		t.Errorf("report 7d --json: %+v", report)
	}
	var pause commands.PauseModel
	run(exitOK, &pause, "pause", "relay-3")
	if pause.Relay != "relay-3" || pause.PausedUntil == nil || pause.By == "" {
		t.Errorf("pause --json: %+v", pause)
	}
	consoleGolden(t, "cli_twins_json_shape.txt", shapes.String())
}

// jsonShape lists the paths of a JSON value with their types, sorted:
// "relays[].report.results[].ok: bool".
func jsonShape(v any) []string {
	set := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 {
				set[path+": {}"] = true
			}
			for k, e := range x {
				walk(strings.TrimPrefix(path+"."+k, "."), e)
			}
		case []any:
			if len(x) == 0 {
				set[path+": []"] = true
			}
			for _, e := range x {
				walk(path+"[]", e)
			}
		case nil:
			set[path+": null"] = true
		default:
			set[fmt.Sprintf("%s: %T", path, x)] = true
		}
	}
	walk("", v)
	return slices.Sorted(maps.Keys(set))
}

// TestCLITwinsTakeTodaysFlags: history's flags keep working beside the
// chat arguments, in any order, and a conflict or a bad value is a usage
// error.
func TestCLITwinsTakeTodaysFlags(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	srv.SetBehavior(smtptest.ResetAfterReady)
	svcTestConsole(t, cfgPath, "check relay-1", "check relay-2")
	byArgs := mustRun(t, "history", "relay-1", "24h", "--config", cfgPath, "--json")
	byFlags := mustRun(t, "history", "--relay", "relay-1", "--since", "24h", "--config", cfgPath, "--json")
	window := regexp.MustCompile(`(?m)^  "(since|until)": .*\n`)
	if window.ReplaceAllString(byArgs, "") != window.ReplaceAllString(byFlags, "") || !strings.Contains(byArgs, `"relay": "relay-1"`) {
		t.Errorf("history relay-1 24h and history --relay relay-1 --since 24h differ:\n%s\n%s", byArgs, byFlags)
	}
	every := mustRun(t, "history", "--config", cfgPath, "--failures", "--limit", "5")
	if strings.Count(every, "tls_reset") != 2 || !strings.Contains(every, "relay-1") || !strings.Contains(every, "relay-2") {
		t.Errorf("history of every relay:\n%s", every)
	}
	for _, args := range [][]string{
		{"history", "--relay", "relay-1", "relay-2"},
		{"history", "relay-1", "--limit", "-1"},
		{"history", "relay-1", "yesterday"},
		{"check"},
		{"check", "relay-1", "--mx", "evil/host"},
		{"status", "--nope"},
	} {
		code, out, errs := svcTestRun(t, "", append(args, "--config", cfgPath)...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errs, "gmailtls "+args[0]+": ") && !strings.Contains(errs, "flag provided but not defined") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and the reason", args, code, out, errs)
		}
	}
}

// TestUnknownRelayListsConfigured: the CLI twins, the console and probe
// --relay name the configured relays when asked for one that is not.
func TestUnknownRelayListsConfigured(t *testing.T) {
	cfgPath, _ := svcTestSetup(t)
	const want = `there is no relay "relay-9"; the relays are relay-1, relay-2, relay-3`
	for _, args := range [][]string{
		{"check", "relay-9"},
		{"history", "relay-9"},
		{"evidence", "relay-9"},
		{"pause", "relay-9"},
		{"probe", "--relay", "relay-9"},
	} {
		code, _, errs := svcTestRun(t, "", append(args, "--config", cfgPath)...)
		if code != exitUsage || !strings.Contains(errs, want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", args, code, errs, want)
		}
	}
	if out := svcTestConsole(t, cfgPath, "check relay-9", "history relay-9"); strings.Count(out, want) != 2 {
		t.Errorf("console:\n%s", out)
	}
}

// TestCheckInterrupted: a check interrupted while it probes (Ctrl-C)
// prints "interrupted", exits 130 and stores nothing.
func TestCheckInterrupted(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	srv.SetBehavior(smtptest.HangBanner)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for srv.Connections() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	code, out, errs := runEnv(ctx, t, nil, "check", "relay-1", "--config", cfgPath)
	if code != exitInterrupted || errs != "interrupted\n" || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 130 and interrupted", code, out, errs)
	}
	if hist := mustRun(t, "history", "--config", cfgPath, "--json"); strings.Contains(hist, `"relay": "relay-1"`) || !strings.Contains(hist, `"results": []`) {
		t.Errorf("the interrupted check was stored:\n%s", hist)
	}
}

// writeRelayConfig writes a configuration with one local relay of that
// name and its database beside it.
func writeRelayConfig(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, "config.toml")
	text := fmt.Sprintf("[storage]\npath = %q\n\n[[relay]]\nname = %q\n\n[http]\nlisten = \"127.0.0.1:1\"\n", name+".db", name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigDefault: every subcommand finds its configuration alike:
// --config, else ./config.toml, else $GMAILTLS_CONFIG, else the defaults.
func TestConfigDefault(t *testing.T) {
	flagFile := writeRelayConfig(t, t.TempDir(), "from-flag")
	envFile := writeRelayConfig(t, t.TempDir(), "from-env")
	here := t.TempDir()
	writeRelayConfig(t, here, "from-cwd")
	elsewhere := t.TempDir()
	envOnly := map[string]string{config.EnvFile: envFile}
	for _, tc := range []struct {
		name    string
		dir     string
		environ map[string]string
		args    []string
		want    string
	}{
		{"flag wins over both", here, envOnly, []string{"--config", flagFile}, "from-flag"},
		{"./config.toml before the environment", here, envOnly, nil, "from-cwd"},
		{"the environment without ./config.toml", elsewhere, envOnly, nil, "from-env"},
		{"the defaults without any", elsewhere, nil, nil, `"local"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(tc.dir)
			if code, _, errs := runEnv(context.Background(), t, tc.environ, append([]string{"storage", "init"}, tc.args...)...); code != exitOK {
				t.Fatalf("storage init: exit %d %s", code, errs)
			}
			for _, sub := range [][]string{{"relays", "--json"}, {"status", "--json"}, {"config", "check"}, {"probe", "--relay", "nope"}} {
				if sub[0] == "config" && tc.environ == nil && tc.dir == elsewhere {
					continue // config check needs a file
				}
				code, out, errs := runEnv(context.Background(), t, tc.environ, append(sub, tc.args...)...)
				got := out + errs
				if sub[0] == "probe" {
					// An unknown relay: the relays of the file used.
					want := "the relays are " + tc.want
					if tc.environ == nil && tc.dir == elsewhere {
						want = "no configuration names any"
					}
					if code != exitUsage || !strings.Contains(errs, want) {
						t.Errorf("%v: exit %d, %q lacks %q", sub, code, got, want)
					}
					continue
				}
				if sub[0] == "config" {
					if code != exitOK || !strings.Contains(out, tc.want+" (local)") {
						t.Errorf("%v: exit %d, %q lacks %s", sub, code, got, tc.want)
					}
					continue
				}
				if code != exitOK || !strings.Contains(out, tc.want) {
					t.Errorf("%v: exit %d, %q lacks %s", sub, code, got, tc.want)
				}
			}
		})
	}
}

// TestHealthcheckReadsListen: healthcheck asks /healthz where serve
// listens: [http] listen of the configuration (an unspecified address on
// loopback), or $GMAILTLS_HTTP_LISTEN; a server that is not healthy exits
// 1, http off is a usage error.
func TestHealthcheckReadsListen(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if !healthy {
			http.Error(w, "storage: not writable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := 0
	writeListen := func(listen string) string {
		files++
		p := filepath.Join(dir, fmt.Sprintf("config-%d.toml", files))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("[http]\nlisten = %q\n", listen)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		name    string
		environ map[string]string
		args    []string
		code    int
		out     string
	}{
		{"every address in the file", nil, []string{"--config", writeListen("0.0.0.0:" + port)}, exitOK, "ok\n"},
		{"$GMAILTLS_CONFIG", map[string]string{config.EnvFile: writeListen("127.0.0.1:" + port)}, nil, exitOK, "ok\n"},
		{"$GMAILTLS_HTTP_LISTEN without a file", map[string]string{"GMAILTLS_HTTP_LISTEN": ":" + port}, nil, exitOK, "ok\n"},
		{"$GMAILTLS_HTTP_LISTEN over the file", map[string]string{"GMAILTLS_HTTP_LISTEN": "127.0.0.1:" + port}, []string{"--config", writeListen("127.0.0.1:1")}, exitOK, "ok\n"},
		{"nothing listening", nil, []string{"--config", writeListen("127.0.0.1:1")}, exitFailed, ""},
		{"http off", nil, []string{"--config", writeListen("off")}, exitUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runEnv(context.Background(), t, tc.environ, append([]string{"healthcheck", "--timeout", "2s"}, tc.args...)...)
			if code != tc.code || out != tc.out {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, errs, tc.code, tc.out)
			}
		})
	}
	healthy = false
	code, _, errs := runEnv(context.Background(), t, map[string]string{"GMAILTLS_HTTP_LISTEN": "127.0.0.1:" + port}, "healthcheck")
	if code != exitFailed || !strings.Contains(errs, "503") {
		t.Errorf("unhealthy: exit %d, stderr %q", code, errs)
	}
}

// TestHelpFlagAlike: -h prints a subcommand's usage on stderr and exits 0,
// for every subcommand.
func TestHelpFlagAlike(t *testing.T) {
	for name := range commandTable() {
		args := []string{name, "-h"}
		if name == "config" {
			args = []string{"config", "check", "-h"}
		}
		code, out, errs := runEnv(context.Background(), t, nil, args...)
		if code != exitOK || out != "" || !strings.Contains(errs, "usage: gmailtls "+name) {
			t.Errorf("%v: exit %d, stdout %q, stderr %.80q", args, code, out, errs)
		}
		if code, _, errs := runEnv(context.Background(), t, nil, "help", name); code != exitOK || !strings.Contains(errs, "usage: gmailtls "+name) {
			t.Errorf("help %s: exit %d, stderr %.80q", name, code, errs)
		}
	}
	if code, _, _ := runEnv(context.Background(), t, nil, "version", "extra"); code != exitUsage {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}
