package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck asks a running gmailtls for /healthz. Distroless images
// carry no curl, so the container's HEALTHCHECK uses the binary itself.
func runHealthcheck(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	url := fs.String("url", "http://127.0.0.1:9425/healthz", "health endpoint to ask")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "healthcheck: %v\n", err)
		return exitUsage
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(e.stderr, "healthcheck: %s did not answer: %v\n", *url, err)
		return exitFailed
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(e.stderr, "healthcheck: %s answered %s: %s", *url, resp.Status, body)
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "%s", body)
	return exitOK
}
