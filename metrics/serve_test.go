package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestListenOff: "" and "off" mean no endpoint.
func TestListenOff(t *testing.T) {
	for _, addr := range []string{"", "off"} {
		if ln, err := Listen(addr); ln != nil || err != nil {
			t.Fatalf("Listen(%q) = %v, %v; want nothing", addr, ln, err)
		}
	}
}

// TestServeAndAskHealth: Serve answers /healthz and /readyz by its checks;
// AskHealth returns the body of a 200 and an error naming the URL and the
// answer otherwise.
func TestServeAndAskHealth(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	notReady := func(context.Context) error { return ErrNotReady }
	srv := New().Serve(context.Background(), &wg, ln, Checks{Ready: notReady}, log)
	defer func() { _ = srv.Shutdown(context.Background()); wg.Wait() }()
	base := "http://" + ln.Addr().String()
	ask := func(path string) ([]byte, error) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return AskHealth(http.DefaultClient, req)
	}
	if body, err := ask("/healthz"); err != nil || string(body) != "ok\n" {
		t.Fatalf("/healthz: %q, %v; want ok", body, err)
	}
	_, err = ask("/readyz")
	if err == nil || err.Error() != base+"/readyz answered 503 Service Unavailable: fail: not ready" {
		t.Fatalf("/readyz: %v; want the URL, the status and the body's line", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	req, _ := http.NewRequest(http.MethodGet, closed.URL, nil)
	if _, err := AskHealth(http.DefaultClient, req); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("a closed server: %v; want did not answer", err)
	}
}
