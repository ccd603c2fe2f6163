package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

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

// runHTTP serves the HTTP-mode endpoints on Config.Listen until ctx ends.
func (b *Bot) runHTTP(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("slack: http mode cannot listen on %s: %w", b.cfg.Listen, err)
	}
	addr := ln.Addr()
	b.addr.Store(&addr)

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathCommands, func(w http.ResponseWriter, r *http.Request) { b.serveCommand(ctx, w, r) })
	mux.HandleFunc("POST "+PathInteractivity, func(w http.ResponseWriter, r *http.Request) { b.serveInteraction(ctx, w, r) })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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

// verify checks Slack's v0 signature over the raw body before anything is
// parsed, and answers 401 (or 413) itself on failure. On success the body
// is put back for parsing.
func (b *Bot) verify(w http.ResponseWriter, r *http.Request) bool {
	sv, err := slack.NewSecretsVerifier(r.Header, b.cfg.SigningSecret)
	if err != nil {
		b.log.Warn("slack: rejected an unsigned or stale request", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", err)
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return false
	}
	body, err := io.ReadAll(io.TeeReader(http.MaxBytesReader(w, r.Body, maxBodyBytes), &sv))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return false
		}
		http.Error(w, "cannot read request", http.StatusBadRequest)
		return false
	}
	if err := sv.Ensure(); err != nil {
		b.log.Warn("slack: rejected a request with a wrong signature", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", err)
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// serveCommand answers a slash command with the Handler's immediate reply
// and queues the rest.
func (b *Bot) serveCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if !b.verify(w, r) {
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
	if !b.verify(w, r) {
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
