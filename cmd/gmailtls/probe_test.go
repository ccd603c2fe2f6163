package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/internal/smtptest"
)

var updateProbeGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// probeCLI runs "gmailtls probe <args>" in-process.
func probeCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return probeCLIEnv(t, nil, args...)
}

// probeCLIEnv is probeCLI with an environment.
func probeCLIEnv(t *testing.T, environ map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code = dispatch(context.Background(), e, append([]string{"probe"}, args...))
	return code, out.String(), errb.String()
}

// probeLab starts one server per behaviour on its own loopback address
// (127.0.0.71, .72, ...; results sort by address) with a shared CA, and
// writes the CA to a file for --ca-file.
func probeLab(t *testing.T, behaviors ...smtptest.Behavior) (addrs []string, caFile string) {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WritePEM(caFile); err != nil {
		t.Fatal(err)
	}
	for i, b := range behaviors {
		s := smtptest.StartT(t, smtptest.Options{Behavior: b, CA: ca, Hostname: "mx.test.example",
			Addr: "127.0.0." + string(rune('0'+7)) + string(rune('1'+i)) + ":0"})
		addrs = append(addrs, s.Addr())
	}
	return addrs, caFile
}

func mxArgs(addrs []string, caFile string, extra ...string) []string {
	var args []string
	for _, a := range addrs {
		args = append(args, "--mx", a)
	}
	return append(append(args, "--servername", "mx.test.example", "--ca-file", caFile), extra...)
}

func TestProbeCLIExitCodes(t *testing.T) {
	addrs, caFile := probeLab(t, smtptest.Gmail, smtptest.StartTLS454)
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"all ok", mxArgs(addrs[:1], caFile), exitOK, ""},
		{"one failed", mxArgs(addrs, caFile), exitFailed, ""},
		{"bad family", mxArgs(addrs[:1], caFile, "--family", "5"), exitUsage, `--family: probe: invalid configuration: family "5": want 4, 6 or any`},
		{"bad mx", []string{"--mx", "host:smtp"}, exitUsage, `port "smtp" is not a number`},
		{"bad source", mxArgs(addrs[:1], caFile, "--source", "relay-1"), exitUsage, `source address "relay-1" is not an IP address`},
		{"ca file without certificates", mxArgs(addrs[:1], empty), exitUsage, "holds no PEM certificate"},
		{"missing ca file", mxArgs(addrs[:1], filepath.Join(t.TempDir(), "nope.pem")), exitUsage, "no such file"},
		{"unknown relay", mxArgs(addrs[:1], caFile, "--relay", "relay-9"), exitUsage, `there is no relay "relay-9": no configuration names any`},
		{"bad timeout", mxArgs(addrs[:1], caFile, "--timeout", "-1s"), exitUsage, "--timeout -1s"},
		{"stray argument", []string{"gmail.com"}, exitUsage, `unexpected argument "gmail.com"`},
		{"unknown flag", []string{"--nope"}, exitUsage, "flag provided but not defined"},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "none.toml")}, exitUsage, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := probeCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			if tc.stderr != "" && !strings.Contains(errs, tc.stderr) {
				t.Errorf("stderr %q lacks %q", errs, tc.stderr)
			}
			if tc.code == exitUsage && tc.name != "unknown flag" {
				if n := strings.Count(strings.TrimSpace(errs), "\n"); n != 0 || !strings.HasPrefix(errs, "gmailtls probe: ") {
					t.Errorf("want a one-line reason, got %q", errs)
				}
			}
			if tc.code != exitUsage && errs != "" {
				t.Errorf("stderr should be empty: %q", errs)
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestProbeCLIJSON(t *testing.T) {
	addrs, caFile := probeLab(t, smtptest.Gmail, smtptest.Greet421)
	code, out, errs := probeCLI(t, mxArgs(addrs, caFile, "--json")...)
	if code != exitFailed || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var rep map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value")
	}
	if got := strings.Join(keys(rep), " "); got != "domain relay results started_at" {
		t.Errorf("report keys = %s", got)
	}
	// Pinned MX hosts are not gmail.com's MX set: the key stays, empty.
	if d, present := rep["domain"]; rep["relay"] != "local" || !present || d != "" {
		t.Errorf("relay %v domain %v (present %v), want local and \"\"", rep["relay"], d, present)
	}
	results := rep["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("%d results", len(results))
	}
	ok, failed := results[0].(map[string]any), results[1].(map[string]any)
	for _, k := range []string{"mx", "preference", "ip", "port", "source_ip", "ok", "tls", "timings_ms", "hints", "transcript", "started_at", "relay"} {
		if _, found := ok[k]; !found {
			t.Errorf("result lacks %q: %v", k, keys(ok))
		}
	}
	tls := ok["tls"].(map[string]any)
	if got := strings.Join(keys(tls), " "); got != "cipher group peer_certificates verified version" {
		t.Errorf("tls keys = %s", got)
	}
	timings := ok["timings_ms"].(map[string]any)
	for _, k := range []string{"connect", "banner", "ehlo", "starttls", "handshake", "post_tls", "total"} {
		if v, _ := timings[k].(float64); v <= 0 {
			t.Errorf("timings_ms.%s = %v", k, timings[k])
		}
	}
	// Every result has every stage key; a stage not reached is null, not
	// 0 (a pinned address needs no lookup: dns is null too).
	ft := failed["timings_ms"].(map[string]any)
	if got := strings.Join(keys(ft), " "); got != strings.Join(keys(timings), " ") || len(ft) != 8 {
		t.Errorf("timings_ms keys of a failure = %s, of a success = %s; want the same 8", got, strings.Join(keys(timings), " "))
	}
	for k, want := range map[string]bool{"dns": false, "connect": true, "banner": true, "ehlo": false, "starttls": false, "handshake": false, "post_tls": false, "total": true} {
		if v, isNum := ft[k].(float64); isNum != want || isNum && v <= 0 || !isNum && ft[k] != nil {
			t.Errorf("failed at the banner: timings_ms.%s = %v, want a number %v", k, ft[k], want)
		}
	}
	if failed["ok"] != false || failed["stage"] != "banner" || failed["failure"] != "smtp_rejected" ||
		failed["smtp_code"] != float64(421) || failed["smtp_text"] == "" {
		t.Errorf("failed result = %v", failed)
	}
	if hints := failed["hints"].([]any); len(hints) == 0 {
		t.Errorf("no hints")
	}
}

// maskProbeText replaces what changes from run to run: times, ports and
// the start time.
func maskProbeText(s string) string {
	for _, m := range []struct{ re, with string }{
		{`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`, "TIME"},
		{`\d{4}-\d\d-\d\d`, "DATE"},
		{`(?m) +\d+\.\d$`, "  MS"},
		// The header's last column is as wide as the longest timing.
		{`(?m)result +ms$`, "result  ms"},
		{`after \d+\.\d ms`, "after MS ms"},
		{`ClientHello of \d+ bytes fails, \d+ bytes works`, "ClientHello of N bytes fails, M bytes works"},
		{`:\d{4,5}\b`, ":PORT"},
	} {
		s = regexp.MustCompile(m.re).ReplaceAllString(s, m.with)
	}
	return s
}

func TestProbeCLIGolden(t *testing.T) {
	addrs, caFile := probeLab(t, smtptest.Gmail, smtptest.Masked, smtptest.ExpiredCert, smtptest.DropLargeHello)
	code, out, errs := probeCLI(t, mxArgs(addrs, caFile)...)
	if code != exitFailed || errs != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	got := []byte(maskProbeText(out))
	golden.Check(t, filepath.Join("testdata", "probe_text.golden"), got, *updateProbeGolden, "-update")
}

func TestProbeCLIConfig(t *testing.T) {
	addrs, caFile := probeLab(t, smtptest.Gmail)
	dir := t.TempDir()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lab-ca.pem"), pem, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.toml")
	text := `[target]
mx = ["` + addrs[0] + `"]
servername = "mx.test.example"
ca_file = "lab-ca.pem"
timeout = "5s"

[[relay]]
name = "relay-7"
kind = "local"
source_ips = ["127.0.0.7"]

[[relay]]
name = "relay-8"
kind = "agent"
url = "http://127.0.0.1:1"
secret_env = "RELAY8_SECRET"
`
	if err := os.WriteFile(cfgFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := map[string]string{"RELAY8_SECRET": "s3cret-for-relay-8-0123456789abcdef"}
	code, out, errs := probeCLIEnv(t, environ, "--config", cfgFile, "--relay", "relay-7", "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	var rep struct {
		Relay   string `json:"relay"`
		Results []struct {
			Relay    string `json:"relay"`
			SourceIP string `json:"source_ip"`
			OK       bool   `json:"ok"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Relay != "relay-7" || len(rep.Results) != 1 || rep.Results[0].SourceIP != "127.0.0.7" || !rep.Results[0].OK {
		t.Errorf("report = %+v", rep)
	}
	// Flags override the file: a servername the certificate lacks.
	code, out, _ = probeCLIEnv(t, environ, "--config", cfgFile, "--servername", "other.example")
	if code != exitFailed || !strings.Contains(out, "cert_hostname_mismatch") {
		t.Errorf("--servername did not override the file: exit %d\n%s", code, out)
	}
	// An agent relay probes on the relay; one that cannot be reached is an
	// agent failure, never a Gmail failure class.
	code, out, errs = probeCLIEnv(t, environ, "--config", cfgFile, "--relay", "relay-8", "--json")
	if code != exitFailed || !strings.Contains(out, `"failure": "agent_unreachable"`) {
		t.Errorf("unreachable agent relay: exit %d, stderr %q\n%s", code, errs, out)
	}
	code, _, errs = probeCLIEnv(t, environ, "--config", cfgFile, "--relay", "relay-8", "--servername", "x.example")
	if code != exitUsage || !strings.Contains(errs, "the agent probes its own configured target") {
		t.Errorf("agent relay with a target flag: exit %d, stderr %q", code, errs)
	}
}
