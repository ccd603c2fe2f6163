package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

const agentTestSecret = "3f6c0d1e9a7b4c2d8e5f1a0b6c7d8e9f3f6c0d1e9a7b4c2d8e5f1a0b6c7d8e9f"

// agentTestStart runs `gmailtls agent --config <file>` in-process and
// returns the URL it listens on; the agent stops when the test ends.
func agentTestStart(t *testing.T, configText string, environ map[string]string) string {
	t.Helper()
	url, stop := agentTestStartStop(t, configText, environ)
	t.Cleanup(stop)
	return url
}

// agentTestStartStop is agentTestStart with the stop left to the caller.
func agentTestStartStop(t *testing.T, configText string, environ map[string]string) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(configText), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: pw, getenv: func(k string) string { return environ[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, e, []string{"agent", "--config", path})
		pw.Close()
	}()
	urlRE := regexp.MustCompile(`url=(https?://\S+)`)
	sc := bufio.NewScanner(pr)
	var url string
	for sc.Scan() {
		t.Log(sc.Text())
		if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("the agent did not start (exit %d)", <-done)
	}
	go func() { // keep draining the log
		for sc.Scan() {
		}
	}()
	var once sync.Once
	return url, func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != exitOK {
					t.Errorf("agent exit %d", code)
				}
			case <-time.After(40 * time.Second):
				t.Error("the agent did not stop")
			}
		})
	}
}

func agentTestTarget(t *testing.T, b smtptest.Behavior, ca *smtptest.CA) (*smtptest.Server, string) {
	t.Helper()
	srv := smtptest.StartT(t, smtptest.Options{Behavior: b, CA: ca, Hostname: "mx.test.example"})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WritePEM(caFile); err != nil {
		t.Fatal(err)
	}
	return srv, fmt.Sprintf(`
[target]
mx = [%q]
servername = "mx.test.example"
ca_file = %q
timeout = "5s"
`, srv.Addr(), caFile)
}

func TestAgentCommandPlainHTTP(t *testing.T) {
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	mx, targetText := agentTestTarget(t, smtptest.Gmail, ca)
	url := agentTestStart(t, targetText+`
[agent]
listen = "127.0.0.1:0"
secret_env = "AGENT_SECRET"
`, map[string]string{"AGENT_SECRET": agentTestSecret})
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("url %s", url)
	}
	a := relay.NewAgent("relay-2", url, []byte(agentTestSecret), nil, 20*time.Second, nil)
	rep, err := a.Probe(t.Context(), relay.Options{MX: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Results) != 1 || rep.Results[0].Relay != "relay-2" || rep.Results[0].Engine != probe.EngineNative {
		t.Fatalf("report %+v", rep)
	}
	if mx.Connections() != 1 {
		t.Errorf("%d connections", mx.Connections())
	}
	info, err := a.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != version || info.Hostname == "" {
		t.Errorf("info %+v", info)
	}
	// A wrong secret is refused and runs nothing.
	b := relay.NewAgent("relay-2", url, []byte("wrong"), nil, 20*time.Second, nil)
	rep, _ = b.Probe(t.Context(), relay.Options{})
	if rep.Results[0].Failure != probe.FailAgentError || !strings.Contains(rep.Results[0].Error, "401") {
		t.Errorf("wrong secret: %+v", rep.Results[0])
	}
	if mx.Connections() != 1 {
		t.Errorf("%d connections after a refused request", mx.Connections())
	}
}

func TestAgentCommandTLSAndRotation(t *testing.T) {
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	_, targetText := agentTestTarget(t, smtptest.Gmail, ca)
	cert, err := ca.Issue([]string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	url := agentTestStart(t, targetText+fmt.Sprintf(`
[agent]
listen = "127.0.0.1:0"
tls_cert = %q
tls_key = %q
secret_env = "NEW_SECRET"
previous_secret_env = "OLD_SECRET"
`, certFile, keyFile), map[string]string{"NEW_SECRET": "new-" + agentTestSecret, "OLD_SECRET": "old-" + agentTestSecret})
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("url %s", url)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	// During a rotation both the old and the new secret are accepted.
	for _, secret := range []string{"old-" + agentTestSecret, "new-" + agentTestSecret} {
		a := relay.NewAgent("relay-2", url, []byte(secret), client, 20*time.Second, nil)
		rep, err := a.Probe(t.Context(), relay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("secret %s…: %+v", secret[:4], rep.Results)
		}
	}
}

func TestAgentCommandRefusesPlainHTTPOffLoopback(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:9426", "192.0.2.10:9426", ":9426"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "agent.toml")
		text := fmt.Sprintf("[agent]\nlisten = %q\nsecret_env = \"S\"\n", listen)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var errb strings.Builder
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &errb, getenv: func(string) string { return agentTestSecret }}
		code := dispatch(t.Context(), e, []string{"agent", "--config", path})
		if code != exitUsage || !strings.Contains(errb.String(), "loopback") {
			t.Errorf("listen %s: exit %d, stderr %q", listen, code, errb.String())
		}
	}
}

// TestAgentCommandReplayAcrossRestart: with state_dir, a request accepted
// before a restart is refused after it; without, a request signed before
// the start is refused.
func TestAgentCommandReplayAcrossRestart(t *testing.T) {
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	mx, targetText := agentTestTarget(t, smtptest.Gmail, ca)
	state := filepath.Join(t.TempDir(), "state")
	text := targetText + fmt.Sprintf(`
[agent]
listen = "127.0.0.1:0"
secret_env = "AGENT_SECRET"
state_dir = %q
`, state)
	environ := map[string]string{"AGENT_SECRET": agentTestSecret}
	ts := time.Now().Unix()
	body := `{"mx":["127.0.0.1"],"nonce":"captured"}`
	captured := func(url string) (int, string) {
		req, err := http.NewRequest("POST", url+relay.PathProbe, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(relay.HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(relay.HeaderSignature, relay.Sign([]byte(agentTestSecret), ts, "POST", relay.PathProbe, []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	url, stop := agentTestStartStop(t, text, environ)
	if code, msg := captured(url); code != 200 {
		t.Fatalf("first request: %d %s", code, msg)
	}
	stop()
	if _, err := os.Stat(filepath.Join(state, relay.ReplayFileName)); err != nil {
		t.Fatalf("no replay cache in state_dir: %v", err)
	}
	url = agentTestStart(t, text, environ)
	if code, msg := captured(url); code != 401 || !strings.Contains(msg, "replay") {
		t.Fatalf("replay after a restart: %d %s", code, msg)
	}
	if n := mx.Connections(); n != 1 {
		t.Fatalf("%d probes ran, want 1", n)
	}

	// Without state_dir: refused as signed before the start.
	ts = time.Now().Add(-2 * time.Second).Unix()
	url = agentTestStart(t, strings.Replace(text, "state_dir", "# state_dir", 1), environ)
	if code, msg := captured(url); code != 401 || !strings.Contains(msg, "before the agent started") {
		t.Fatalf("signed before the start: %d %s", code, msg)
	}
}
