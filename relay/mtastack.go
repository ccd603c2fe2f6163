package relay

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay/mta"
)

// Defaults of the MTA-stack run.
const (
	// DefaultCAPath is the hashed system trust store folder handed to
	// posttls-finger (-P); Debian and Ubuntu keep it here.
	DefaultCAPath = "/etc/ssl/certs"
	// mtaStackConcurrency bounds the tools running at once.
	mtaStackConcurrency = 4
	// defaultToolStage is the per-stage timeout of the tools when the
	// target sets none.
	defaultToolStage = 20 * time.Second
)

// mtaTarget is one MX address the native probe reached.
type mtaTarget struct {
	mx         string
	pref       uint16
	ip         string
	port       int
	servername string
	native     probe.Result
}

// runMTAStack runs the relay's own openssl s_client and, where Postfix is
// installed, posttls-finger toward every MX address the native probe got a
// TCP connection and a greeting from. A tool that is not installed is
// skipped. openssl gets the target's stage timeout plus 5 s in all
// (it has no timeouts of its own); posttls-finger gets the stage timeout
// for its connect and each command, and twice that plus 5 s in all. When the
// native probe passed toward an address and a tool failed toward it, the
// tool's result carries MTAStackHint.
func (l *Local) runMTAStack(ctx context.Context, cfg probe.Config, native []probe.Result) []probe.Result {
	var targets []mtaTarget
	seen := map[string]bool{}
	for _, r := range native {
		if r.IP == "" || r.Port == 0 || r.Stage == probe.StageDNS || r.Stage == probe.StageConnect ||
			r.Stage == probe.StageAgent || r.Failure == probe.FailBannerTimeout {
			// No TCP session, or a server that never greets: the tools
			// would only wait for the same timeout and tell nothing new.
			continue
		}
		sn := r.ServerName
		if sn == "" {
			sn = cfg.ServerName
		}
		if sn == "" {
			sn = r.MX
		}
		key := strings.Join([]string{r.MX, r.IP, strconv.Itoa(r.Port), sn}, "|")
		if seen[key] {
			// Several source IPs toward one address: the tools cannot
			// bind, so one run covers them; keep the first native result
			// unless a later one passed.
			for i := range targets {
				if targets[i].ip == r.IP && targets[i].port == r.Port && r.OK {
					targets[i].native = r
				}
			}
			continue
		}
		seen[key] = true
		targets = append(targets, mtaTarget{mx: r.MX, pref: r.Preference, ip: r.IP, port: r.Port, servername: sn, native: r})
	}
	stage := cfg.Timeout
	if stage <= 0 {
		stage = defaultToolStage
	}
	caPath := l.CAPath
	if caPath == "" {
		caPath = DefaultCAPath
	}
	helo := cfg.HelloName
	cmds := l.commands()

	type job struct {
		t      mtaTarget
		engine string
	}
	var jobs []job
	for _, t := range targets {
		jobs = append(jobs, job{t, probe.EngineOpenSSL}, job{t, probe.EnginePosttlsFinger})
	}
	results := make([]*probe.Result, len(jobs))
	sem := make(chan struct{}, mtaStackConcurrency)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					l.logger().Error("relay: panic in the MTA-stack run", "engine", j.engine, "ip", j.t.ip, "panic", v)
				}
			}()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			var args []string
			var limit time.Duration
			var parse func([]byte, bool) mta.Outcome
			var prog string
			switch j.engine {
			case probe.EngineOpenSSL:
				prog = "openssl"
				args = mta.OpenSSLArgs(j.t.ip, j.t.port, j.t.servername, helo, l.CAFile)
				limit = stage + 5*time.Second
				parse = mta.ParseOpenSSL
			default:
				prog = "posttls-finger"
				args = mta.PosttlsFingerArgs(j.t.ip, j.t.port, j.t.servername, l.CAFile, caPath, int((stage+time.Second-1)/time.Second))
				limit = 2*stage + 5*time.Second
				parse = mta.ParsePosttlsFinger
			}
			tctx, cancel := context.WithTimeout(ctx, limit)
			defer cancel()
			start := l.now()
			out, err := cmds.Run(tctx, prog, args...)
			if errors.Is(err, exec.ErrNotFound) {
				l.logger().Debug("relay: MTA-stack tool not installed", "tool", prog)
				return
			}
			timedOut := tctx.Err() != nil
			if ctx.Err() != nil {
				return // the whole probe was cancelled: report nothing half-done
			}
			o := parse(out, timedOut)
			if o.ToolError != "" {
				l.logger().Warn("relay: the MTA-stack tool could not run; no comparison from it", "tool", prog, "error", o.ToolError)
				return
			}
			res := probe.Result{
				Relay: l.name, Engine: j.engine, MX: j.t.mx, Preference: j.t.pref,
				IP: j.t.ip, Port: j.t.port, ServerName: j.t.servername, StartedAt: start,
			}
			o.Apply(&res)
			res.Timings.Total = ms(l.now().Sub(start))
			if j.t.native.OK && !res.OK {
				res.Hints = appendHint(res.Hints, MTAStackHint)
			}
			results[i] = &res
		}()
	}
	wg.Wait()
	var out []probe.Result
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}
