package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// Listen listens on addr, [http] listen, for Serve; nil, nil when addr is
// "" or "off" (no endpoint).
func Listen(addr string) (net.Listener, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w (is another gmailtls running?)", addr, err)
	}
	return ln, nil
}

// Serve serves /metrics, /healthz and /readyz with checks c on ln, its
// connections capped (Listener), in a goroutine wg waits for, until the
// returned server is shut down. Requests get ctx as their base context.
func (m *Metrics) Serve(ctx context.Context, wg *sync.WaitGroup, ln net.Listener, c Checks, log *slog.Logger) *http.Server {
	srv := m.Server(c, log)
	srv.BaseContext = func(net.Listener) context.Context { return ctx }
	wg.Go(func() {
		if err := srv.Serve(Listener(ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	})
	log.Info("serving /metrics, /healthz, /readyz", "addr", ln.Addr().String())
	return srv
}

// AskHealth sends req, a GET of a running gmailtls's /healthz, with client
// and returns the answer's body (at most 4 KiB) when it is 200 OK. Any
// other answer, or none, is an error naming the URL, with the body's first
// line(s) when there is one.
func AskHealth(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s did not answer: %w", req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s: %s", req.URL, resp.Status, bytes.TrimSuffix(body, []byte("\n")))
	}
	return body, nil
}
