package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/httpserver"
	"github.com/gmailtls/gmailtls/logging"
	"github.com/gmailtls/gmailtls/relay"
)

// agentShutdownGrace bounds how long a stopping agent waits for requests in
// flight.
const agentShutdownGrace = 30 * time.Second

// agentMaxConns caps the agent's open connections: the bot needs a few,
// and anyone else is firewalled off or refused by the signature.
const agentMaxConns = 64

// runAgent runs the relay agent: `gmailtls agent --config agent.toml`. It
// serves relay.NewServer over HTTPS (tls_cert/tls_key) or, bound to
// loopback only, plain HTTP, until ctx ends; SIGHUP re-reads the secrets.
func runAgent(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	path := fs.String("config", "agent.toml", "the agent's configuration `file` ([target] and [agent])")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: gmailtls agent [--config agent.toml]")
		fmt.Fprintln(e.stderr, "\nServes POST /v1/probe, GET /v1/info, GET /v1/queue (signed) and GET /healthz to the bot.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "gmailtls agent: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	cfg, err := config.LoadAgent(*path, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls agent: %v\n", err)
		return exitUsage
	}
	if cfg.Agent == nil {
		fmt.Fprintf(e.stderr, "gmailtls agent: %s has no [agent] table\n", *path)
		return exitUsage
	}
	logger := logging.New(e.stderr, cfg.Log.Format, cfg.Log.Level)
	a, err := newAgentRun(cfg, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls agent: %v\n", err)
		return exitUsage
	}

	defer a.close()
	onSIGHUP(ctx, func() { a.reloadSecrets(*path, e.getenv) })

	if err := a.serve(ctx); err != nil {
		logger.Error("agent stopped", "error", err.Error())
		return exitFailed
	}
	return exitOK
}

// agentRun is one running agent.
type agentRun struct {
	cfg     *config.Config
	log     *slog.Logger
	secrets atomic.Pointer[[][]byte]
	handler http.Handler
	replay  *relay.ReplayCache // nil: in memory, with the start rule
	tls     *tls.Config        // nil: plain HTTP on loopback
	// listening, when set, receives the bound address once the agent
	// accepts connections (tests listen on 127.0.0.1:0).
	listening func(addr string)
}

// newAgentRun checks what the agent needs before it binds anything: the
// loopback rule for plain HTTP, the TLS key pair, the target.
func newAgentRun(cfg *config.Config, logger *slog.Logger) (*agentRun, error) {
	ac := cfg.Agent
	host, _, err := net.SplitHostPort(ac.Listen)
	if err != nil {
		return nil, fmt.Errorf("agent.listen %q is not host:port: %w", ac.Listen, err)
	}
	a := &agentRun{cfg: cfg, log: logger}
	if ac.TLSCert == "" && ac.TLSKey == "" {
		if !agentLoopback(host) {
			return nil, fmt.Errorf("refusing to serve plain HTTP on %s: the agent speaks plain HTTP only when bound to loopback (127.0.0.1, ::1); set tls_cert and tls_key in [agent] to serve HTTPS on other addresses", ac.Listen)
		}
	} else {
		cert, err := tls.LoadX509KeyPair(cfg.Resolve(ac.TLSCert), cfg.Resolve(ac.TLSKey))
		if err != nil {
			return nil, fmt.Errorf("loading the agent's TLS certificate %s and key %s: %w", cfg.Resolve(ac.TLSCert), cfg.Resolve(ac.TLSKey), err)
		}
		a.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	base, err := relay.ProbeConfig(cfg, relay.RunnerOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	if h, err := os.Hostname(); err == nil {
		base.Relay = h
	}
	secrets := agentSecrets(ac)
	if len(secrets) == 0 {
		return nil, errors.New("the agent has no secret: set [agent] secret_env or secret_file")
	}
	a.secrets.Store(&secrets)
	// A restart must not forget the requests already accepted, or one
	// captured before it could run again: with a state directory the
	// replay cache lives there; without one, every request signed before
	// the start is refused.
	var notBefore time.Time
	if ac.StateDir != "" {
		dir := cfg.Resolve(ac.StateDir)
		a.replay, err = relay.OpenReplayCache(dir, time.Now())
		if err != nil {
			return nil, fmt.Errorf("agent.state_dir %s: %w", dir, err)
		}
		logger.Info("agent: replay cache loaded", "state_dir", dir, "signatures", a.replay.Len())
	} else {
		notBefore = time.Now()
		logger.Warn("agent: no state_dir: requests signed before this start are refused, and the replay cache is kept in memory only; set [agent] state_dir to keep it across restarts")
	}
	a.handler = relay.NewServer(relay.ServerConfig{
		Base:        base,
		SecretsFunc: func() [][]byte { return *a.secrets.Load() },
		MaxProbes:   ac.MaxProbes,
		Logger:      logger,
		Version:     version,
		MTAStack:    ac.MTAStack,
		CAFile:      cfg.Resolve(cfg.Target.CAFile),
		Postqueue:   ac.Postqueue,
		Replay:      a.replay,
		NotBefore:   notBefore,
	})
	return a, nil
}

// close releases the replay cache's file.
func (a *agentRun) close() {
	if a.replay != nil {
		if err := a.replay.Close(); err != nil {
			a.log.Warn("agent: closing the replay cache", "error", err.Error())
		}
	}
}

func agentSecrets(ac *config.Agent) [][]byte {
	var out [][]byte
	if v := ac.Secret.Value(); v != "" {
		out = append(out, []byte(v))
	}
	if v := ac.PreviousSecret.Value(); v != "" {
		out = append(out, []byte(v))
	}
	return out
}

// reloadSecrets re-reads the configuration and takes its secrets (SIGHUP):
// the way to rotate the secret without a restart. Anything else that
// changed needs a restart; a file that no longer loads changes nothing.
func (a *agentRun) reloadSecrets(path string, getenv func(string) string) {
	cfg, err := config.LoadAgent(path, getenv)
	if err != nil {
		a.log.Error("agent: reload failed, keeping the current secrets", "config", path, "error", err.Error())
		return
	}
	secrets := agentSecrets(cfg.Agent)
	if len(secrets) == 0 {
		a.log.Error("agent: reload found no secret, keeping the current secrets", "config", path)
		return
	}
	a.secrets.Store(&secrets)
	a.log.Info("agent: secrets reloaded", "accepted_secrets", len(secrets))
}

// serve listens and serves until ctx ends, then shuts down gracefully.
func (a *agentRun) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Agent.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", a.cfg.Agent.Listen, err)
	}
	// The longest request is a probe: the answer must still be writable
	// when it ends.
	srv := httpserver.New(a.handler, a.log, httpserver.Options{WriteTimeout: relay.ServerWriteTimeout})
	ln = httpserver.LimitListener(ln, agentMaxConns)
	scheme := "http"
	if a.tls != nil {
		scheme = "https"
		srv.TLSConfig = a.tls
		ln = tls.NewListener(ln, a.tls)
	}
	addr := ln.Addr().String()
	a.log.Info("agent listening", "url", scheme+"://"+addr, "mta_stack", a.cfg.Agent.MTAStack, "max_probes", a.cfg.Agent.MaxProbes)
	if a.listening != nil {
		a.listening(addr)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	a.log.Info("agent stopping", "grace", agentShutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), agentShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func agentLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
