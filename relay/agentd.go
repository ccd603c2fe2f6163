package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gmailtls/gmailtls/probe"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/httpserver"
)

// agentShutdownGrace bounds how long a stopping agent waits for requests in
// flight.
const agentShutdownGrace = 30 * time.Second

// agentMaxConns caps the agent's open connections: the bot needs a few,
// and anyone else is firewalled off or refused by the signature.
const agentMaxConns = 64

// AgentDaemon is `gmailtls agent`: the agent's server (NewServer) built
// from the agent's configuration ([target] and [agent]), served over HTTPS
// (tls_cert, tls_key) or, bound to loopback only, plain HTTP.
type AgentDaemon struct {
	cfg     *config.Config
	log     *slog.Logger
	secrets atomic.Pointer[[][]byte]
	handler http.Handler
	replay  *ReplayCache // nil: in memory, with the start rule
	tls     *tls.Config  // nil: plain HTTP on loopback
}

// NewAgentDaemon checks what the agent needs before it binds anything:
// the loopback rule for plain HTTP, the TLS key pair, the target, a
// secret. cfg must have an [agent] table.
func NewAgentDaemon(cfg *config.Config, logger *slog.Logger, version string) (*AgentDaemon, error) {
	ac := cfg.Agent
	if ac == nil {
		return nil, errors.New("the configuration has no [agent] table")
	}
	host, _, err := net.SplitHostPort(ac.Listen)
	if err != nil {
		return nil, fmt.Errorf("agent.listen %q is not host:port: %w", ac.Listen, err)
	}
	a := &AgentDaemon{cfg: cfg, log: logger}
	if ac.TLSCert == "" && ac.TLSKey == "" {
		if !LoopbackHost(host) {
			return nil, fmt.Errorf("refusing to serve plain HTTP on %s: the agent speaks plain HTTP only when bound to loopback (127.0.0.1, ::1); set tls_cert and tls_key in [agent] to serve HTTPS on other addresses", ac.Listen)
		}
	} else {
		cert, err := tls.LoadX509KeyPair(cfg.Resolve(ac.TLSCert), cfg.Resolve(ac.TLSKey))
		if err != nil {
			return nil, fmt.Errorf("loading the agent's TLS certificate %s and key %s: %w", cfg.Resolve(ac.TLSCert), cfg.Resolve(ac.TLSKey), err)
		}
		a.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	base, err := ProbeConfig(cfg, RunnerOptions{Logger: logger})
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
		a.replay, err = OpenReplayCache(dir, time.Now())
		if err != nil {
			return nil, fmt.Errorf("agent.state_dir %s: %w", dir, err)
		}
		logger.Info("agent: replay cache loaded", "state_dir", dir, "signatures", a.replay.Len())
	} else {
		notBefore = time.Now()
		logger.Warn("agent: no state_dir: requests signed before this start are refused, and the replay cache is kept in memory only; set [agent] state_dir to keep it across restarts")
	}
	control, err := ControlTargets(cfg)
	if err != nil {
		return nil, err
	}
	a.handler = NewServer(ServerConfig{
		Base:        base,
		ControlMX:   control,
		SecretsFunc: func() [][]byte { return *a.secrets.Load() },
		MaxProbes:   ac.MaxProbes,
		Logger:      logger,
		Version:     version,
		MTAStack:    ac.MTAStack,
		CAFile:      cfg.Resolve(cfg.Target.CAFile),
		Postqueue:   ac.Postqueue,
		MailLog:     mailLogSource(cfg),
		Replay:      a.replay,
		NotBefore:   notBefore,
		// Recipient domains whose MX hosts are Google's count as
		// Gmail-bound: the relay's own resolver says where its mail goes.
		Resolver:     net.DefaultResolver,
		GmailDomains: ac.GmailDomains,
		// Recipients whose delivery attempts the mail log shows going to
		// the target's MX hosts count too (a Workspace domain routed
		// there by a transport map, whatever its MX records say).
		MailLogBound: mailLogBound(mailLogSource(cfg), base.MX),
	})
	return a, nil
}

// Close releases the replay cache's file.
func (a *AgentDaemon) Close() {
	if a.replay != nil {
		if err := a.replay.Close(); err != nil {
			a.log.Warn("agent: closing the replay cache", "error", err.Error())
		}
	}
}

// agentSecrets are the secrets an agent accepts: the current one and,
// during a rotation, the previous one.
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

// ReloadSecrets takes the secrets of a configuration read again (SIGHUP):
// the way to rotate the secret without a restart. Anything else that
// changed needs a restart; without a secret the current ones stay and the
// error says why.
func (a *AgentDaemon) ReloadSecrets(cfg *config.Config) error {
	if cfg.Agent == nil {
		return errors.New("the configuration has no [agent] table")
	}
	secrets := agentSecrets(cfg.Agent)
	if len(secrets) == 0 {
		return errors.New("the configuration has no secret")
	}
	a.secrets.Store(&secrets)
	a.log.Info("agent: secrets reloaded", "accepted_secrets", len(secrets))
	return nil
}

// Serve listens on [agent] listen and serves until ctx ends, then shuts
// down gracefully within agentShutdownGrace.
func (a *AgentDaemon) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Agent.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", a.cfg.Agent.Listen, err)
	}
	// The longest request is a probe: the answer must still be writable
	// when it ends.
	srv := httpserver.New(a.handler, a.log, httpserver.Options{WriteTimeout: ServerWriteTimeout})
	ln = httpserver.LimitListener(ln, agentMaxConns)
	scheme := "http"
	if a.tls != nil {
		scheme = "https"
		srv.TLSConfig = a.tls
		ln = tls.NewListener(ln, a.tls)
	}
	a.log.Info("agent listening", "url", scheme+"://"+ln.Addr().String(), "mta_stack", a.cfg.Agent.MTAStack, "max_probes", a.cfg.Agent.MaxProbes)
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

// LoopbackHost reports whether host (of a listen address) is loopback
// only: localhost, 127.0.0.0/8 or ::1.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// mailLogBound is the ServerConfig.MailLogBound hook reading source
// toward the target's pinned MX (nil when no mail log is configured).
func mailLogBound(source string, targets []probe.Target) func(queueID, domain string) bool {
	if source == "" {
		return nil
	}
	b := &MailLogBound{Source: source, Targets: targets}
	return b.Func()
}
