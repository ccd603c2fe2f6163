package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gmailtls/gmailtls/internal/httpserver"
	"github.com/slack-go/slack"
)

// maxBodyBytes caps an HTTP-mode request body. Interaction payloads carry
// the whole message the button was on, so this is generous.
const maxBodyBytes = 1 << 20

// HTTP-mode paths: the slash command's Request URL and the interactivity
// Request URL of the app manifest.
const (
	PathCommands      = "/slack/commands"
	PathInteractivity = "/slack/interactivity"
)

// HTTP-mode server limits. Slack sends small requests and wants its
// answer within 3 s, so everything is short; a connection idle longer
// than httpIdleTimeout is closed; at most httpMaxConns are open at once.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 10 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxConns          = 256
)

// httpServer is HTTP mode's server for the handler of ctx, with its
// timeouts and net/http's errors logged as warnings.
func (b *Bot) httpServer(ctx context.Context) *http.Server {
	return httpserver.New(b.httpHandler(ctx), b.log, httpserver.Options{
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
	})
}

// httpHandler serves the two Request URLs; background work runs under ctx.
func (b *Bot) httpHandler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathCommands, func(w http.ResponseWriter, r *http.Request) { b.serveCommand(ctx, w, r) })
	mux.HandleFunc("POST "+PathInteractivity, func(w http.ResponseWriter, r *http.Request) { b.serveInteraction(ctx, w, r) })
	return mux
}

// runHTTP serves the HTTP-mode endpoints on Config.Listen until ctx ends.
func (b *Bot) runHTTP(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("slack: http mode cannot listen on %s: %w", b.cfg.Listen, err)
	}
	addr := ln.Addr()
	b.addr.Store(&addr)
	if b.memoryOnly {
		b.log.Warn("slack: http mode remembers the requests it ran in memory only; requests signed before this start are refused")
	}

	srv := b.httpServer(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(httpserver.LimitListener(ln, httpMaxConns)) }()
	b.ready.Store(true)
	b.log.Info("slack: http mode listening", "addr", addr.String(), "commands", PathCommands, "interactivity", PathInteractivity)

	select {
	case err := <-errc:
		b.ready.Store(false)
		return fmt.Errorf("slack: http mode server stopped: %w", err)
	case <-ctx.Done():
	}
	b.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc
	return nil
}

// admit lets a request through only when it is signed with the signing
// secret, fresh, and not a replay: the signature headers and the clock are
// checked before the body is read, the signature over the raw body before
// anything is parsed, and the request is recorded in the replay memory
// before anything runs. It answers the request itself when it is refused:
// 401 for a missing, wrong or stale signature; 413 for a body over the
// cap; an empty 200 (so that Slack stops retrying) for a signature already
// accepted, or for a retry (X-Slack-Retry-Num) of a body already accepted;
// 503 when the replay memory cannot record it. On success the body is put
// back for parsing.
func (b *Bot) admit(w http.ResponseWriter, r *http.Request) bool {
	now := b.now()
	sr, err := signatureHeaders(r.Header, now)
	if err == nil && !b.replayFrom.IsZero() && sr.ts.Before(b.replayFrom) {
		err = errSignature("the request was signed before the bot started, and its replay memory did not survive the restart")
	}
	if err != nil {
		b.log.Warn("slack: rejected an unsigned or stale request", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", err)
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return false
		}
		http.Error(w, "cannot read request", http.StatusBadRequest)
		return false
	}
	if !sr.verify(b.cfg.SigningSecret, body) {
		b.log.Warn("slack: rejected a request with a wrong signature", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", "the signature does not match the signing secret")
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return false
	}
	rctx, cancel := context.WithTimeout(r.Context(), replayTimeout)
	defer cancel()
	seen, err := b.replay.RememberSlackRequest(rctx, now, sr.keys(body, now)...)
	if err != nil {
		b.log.Error("slack: could not record a request in the replay memory, so it was refused rather than run unprotected", "path", r.URL.Path, "err", err)
		http.Error(w, "cannot record the request; try again", http.StatusServiceUnavailable)
		return false
	}
	retry := r.Header.Get(headerRetryNum)
	switch {
	case seen[0]:
		b.log.Warn("slack: refused a replayed request: its signature was accepted before; answered 200, nothing run", "remote", r.RemoteAddr, "path", r.URL.Path, "retry_num", retry)
		w.WriteHeader(http.StatusOK)
		return false
	case retry != "" && seen[1]:
		b.log.Info("slack: a retry of a request already accepted; answered 200, not run again", "path", r.URL.Path, "retry_num", retry, "retry_reason", r.Header.Get("X-Slack-Retry-Reason"))
		w.WriteHeader(http.StatusOK)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// serveCommand answers a slash command with the Handler's immediate reply
// and queues the rest.
func (b *Bot) serveCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if !b.admit(w, r) {
		return
	}
	cmd, err := slack.SlashCommandParse(r)
	if err != nil {
		http.Error(w, "malformed slash command", http.StatusBadRequest)
		return
	}
	reply, after := b.acceptSlash(r.Context(), cmd)
	data, err := json.Marshal(reply)
	if err != nil {
		http.Error(w, "cannot encode reply", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(data)
	after()
}

// serveInteraction acknowledges a button press with an empty 200 and
// handles it in the background.
func (b *Bot) serveInteraction(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if !b.admit(w, r) {
		return
	}
	cb, err := slack.InteractionCallbackParse(r)
	if err != nil {
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	b.spawn(ctx, func() { b.acceptInteraction(ctx, cb) })
}
