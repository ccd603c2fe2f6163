// Command smtptestd runs the gmailtls scripted STARTTLS test server on a
// loopback address until SIGINT or SIGTERM, so that a person or a script
// (bench/compare-openssl.sh) can aim gmailtls or openssl at it:
//
//	go run ./internal/smtptest/smtptestd -listen 127.0.0.1:0 -behavior gmail \
//	    -hostname mx.test.example -ca-out /tmp/ca.pem
//	gmailtls probe --mx 127.0.0.1:PORT --servername mx.test.example --ca-file /tmp/ca.pem
//
// It writes the CA certificate to -ca-out and prints one line,
// "listening ADDR", to standard output once it accepts connections. -list
// prints every behaviour with a one-line description.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, serves until ctx ends (SIGINT or SIGTERM in main) and
// returns the exit status: 0 after a clean stop, 1 on a runtime error, 2
// on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("smtptestd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", smtptest.DefaultAddr, "listen `address` (loopback: 127.0.0.1:0, [::1]:0, 127.0.0.5:2525)")
	behavior := fs.String("behavior", string(smtptest.Gmail), "`behaviour` of the server (see -list)")
	hostname := fs.String("hostname", smtptest.DefaultHostname, "DNS `name` in the server certificate (use it as --servername)")
	caOut := fs.String("ca-out", "", "write the CA certificate (PEM) to this `file`, for --ca-file or openssl -CAfile")
	delay := fs.Duration("greeting-delay", 0, "wait this long before the greeting")
	large := fs.Int("large-hello-bytes", smtptest.DefaultLargeHelloBytes, "ClientHello record `size` above which drop_large_hello resets")
	list := fs.Bool("list", false, "print every behaviour with a description and exit")
	verbose := fs.Bool("v", false, "log every connection to standard error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "smtptestd: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *list {
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		for _, b := range smtptest.Behaviors() {
			fmt.Fprintf(tw, "%s\t%s\n", b, b.Description())
		}
		if err := tw.Flush(); err != nil {
			fmt.Fprintf(stderr, "smtptestd: %v\n", err)
			return 1
		}
		return 0
	}
	b, err := smtptest.ParseBehavior(*behavior)
	if err != nil {
		fmt.Fprintf(stderr, "smtptestd: %v\n", err)
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv, err := smtptest.Start(smtptest.Options{
		Behavior:        b,
		Hostname:        *hostname,
		Addr:            *listen,
		GreetingDelay:   *delay,
		LargeHelloBytes: *large,
		Logger:          logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "smtptestd: %v\n", err)
		return 1
	}
	if *caOut != "" {
		if err := srv.CA().WritePEM(*caOut); err != nil {
			_ = srv.Close()
			fmt.Fprintf(stderr, "smtptestd: %v\n", err)
			return 1
		}
	}
	// os.Stdout is unbuffered: the line is out when Fprintf returns.
	fmt.Fprintf(stdout, "listening %s\n", srv.Addr())
	errs := srv.Errors()
	for {
		select {
		case <-ctx.Done():
			start := time.Now()
			if err := srv.Close(); err != nil {
				fmt.Fprintf(stderr, "smtptestd: %v\n", err)
				return 1
			}
			logger.Info("stopped", "connections", srv.Connections(), "close_ms", time.Since(start).Milliseconds())
			return 0
		case err, ok := <-errs:
			if !ok {
				return 0
			}
			logger.Warn("server error", "err", err)
		}
	}
}
