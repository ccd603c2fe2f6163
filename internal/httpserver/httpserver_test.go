package httpserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmailtls/gmailtls/internal/pipenet"
)

// get sends one keep-alive GET on c and reads the answer.
func get(t *testing.T, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Close {
		t.Fatal("the server closed the connection after one request")
	}
	return string(b)
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

// TestIdleKeepAliveConnectionClosed: a keep-alive connection that sends no
// further request is closed after IdleTimeout, not after the much longer
// ReadTimeout net/http would otherwise use for idle connections.
func TestIdleKeepAliveConnectionClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 5 * time.Second
		srv := New(okHandler(), slog.New(slog.DiscardHandler), Options{IdleTimeout: idle, ReadTimeout: time.Hour, ReadHeaderTimeout: time.Hour})
		ln := pipenet.Listen(9426)
		go srv.Serve(ln)
		defer srv.Close()

		c := ln.Dial()
		defer c.Close()
		br := bufio.NewReader(c)
		if got := get(t, c, br); got != "ok" {
			t.Fatalf("answer %q", got)
		}
		// A second request within the idle time still finds the
		// connection open.
		time.Sleep(idle - time.Second)
		if got := get(t, c, br); got != "ok" {
			t.Fatalf("second answer %q", got)
		}
		start := time.Now()
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: read %v, want EOF", err)
		}
		if waited := time.Since(start); waited < idle || waited > idle+time.Second {
			t.Fatalf("the idle connection was closed after %s, want %s", waited, idle)
		}
	})
}

// TestDefaults: zero options take the defaults, and the timeouts are all
// set.
func TestDefaults(t *testing.T) {
	srv := New(okHandler(), nil, Options{WriteTimeout: 11 * time.Minute})
	if srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.ReadTimeout != DefaultReadTimeout ||
		srv.WriteTimeout != 11*time.Minute || srv.IdleTimeout != DefaultIdleTimeout || srv.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Errorf("server %+v", srv)
	}
}

// TestErrorLogGoesToSlog: net/http's own complaints (here about a
// malformed request) reach the slog handler as warnings.
func TestErrorLogGoesToSlog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		srv := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.WriteHeader(500) // "superfluous response.WriteHeader call"
		}), slog.New(slog.NewTextHandler(&buf, nil)), Options{})
		ln := pipenet.Listen(9426)
		go srv.Serve(ln)
		defer srv.Close()
		c := ln.Dial()
		defer c.Close()
		get(t, c, bufio.NewReader(c))
		synctest.Wait()
		if s := buf.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "superfluous") {
			t.Fatalf("log %q", s)
		}
	})
}

// TestLimitListener: beyond n open connections, the next one is served
// only when one closes.
func TestLimitListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := pipenet.Listen(9426)
		srv := New(okHandler(), slog.New(slog.DiscardHandler), Options{})
		go srv.Serve(LimitListener(ln, 2))
		defer srv.Close()

		var conns []net.Conn
		for range 2 {
			c := ln.Dial()
			defer c.Close()
			get(t, c, bufio.NewReader(c))
			conns = append(conns, c)
		}
		third := ln.Dial()
		defer third.Close()
		answered := make(chan string, 1)
		go func() {
			io.WriteString(third, "GET / HTTP/1.1\r\nHost: agent\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(third), nil)
			if err != nil {
				answered <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			answered <- string(b)
		}()
		synctest.Wait()
		select {
		case a := <-answered:
			t.Fatalf("a third connection was served beyond the limit of 2: %q", a)
		default:
		}
		conns[0].Close()
		if a := <-answered; a != "ok" {
			t.Fatalf("third connection, after one closed: %q", a)
		}
	})
}

// TestLimitListenerClose: a closed listener stops waiting for a slot.
func TestLimitListenerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := LimitListener(pipenet.Listen(9426), 1)
		errc := make(chan error, 1)
		go func() { _, err := ln.Accept(); errc <- err }()
		synctest.Wait()
		ln.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
