package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/metrics"
)

const healthcheckUsage = `usage: gmailtls healthcheck [--config FILE] [--url URL] [--timeout 5s]

Asks a running gmailtls serve for /healthz and exits 0 when it answers ok,
1 otherwise. The address is the configuration's [http] listen (or
$GMAILTLS_HTTP_LISTEN), asked on loopback when it listens on every
address; --url overrides it. Distroless images carry no curl: the
container's HEALTHCHECK runs this.

`

// runHealthcheck asks a running gmailtls for /healthz.
func runHealthcheck(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	cf := addConfigFlag(fs)
	url := fs.String("url", "", "the health `URL` to ask (default: /healthz on [http] listen)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for an answer")
	if code, ok := svcParse(e, fs, healthcheckUsage, args); !ok {
		return code
	}
	if *url == "" {
		u, err := healthURL(e, cf)
		if err != nil {
			fmt.Fprintf(e.stderr, "healthcheck: %v\n", err)
			return exitUsage
		}
		*url = u
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "healthcheck: %v\n", err)
		return exitUsage
	}
	body, err := metrics.AskHealth(http.DefaultClient, req)
	if err != nil {
		fmt.Fprintf(e.stderr, "healthcheck: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "%s", body)
	return exitOK
}

// healthURL is where serve answers /healthz: [http] listen of the
// configuration, or without one $GMAILTLS_HTTP_LISTEN or the default, on
// loopback when it listens on every address.
func healthURL(e *env, cf *configFlag) (string, error) {
	h := config.HTTP{Listen: cmp.Or(e.getenv(config.EnvHTTPListen), config.Default().HTTP.Listen)}
	if path, found := cf.resolve(e); found {
		cfg, err := config.Load(path, e.getenv)
		if err != nil {
			return "", err
		}
		h = cfg.HTTP
	}
	addr, err := h.LoopbackAddr()
	return "http://" + addr + "/healthz", err
}
