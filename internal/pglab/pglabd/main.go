// Command pglabd runs the private PostgreSQL cluster of internal/pglab on
// loopback until SIGINT or SIGTERM, so that .ci/run can start one server for
// every test binary, and a person can run the storage benchmarks on
// PostgreSQL. It needs Debian's postgresql-15 package (root runs the server
// as the postgres user):
//
//	go run ./internal/pglab/pglabd            # prints "dsn ..." then "ready"
//	GMAILTLS_TEST_POSTGRES=postgres://... go test ./storage
//
// On standard output it prints two lines once the server accepts
// connections, and nothing else:
//
//	dsn postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
//	ready
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gmailtls/gmailtls/internal/pglab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx ends: 0 after a clean stop, 1 on a runtime error,
// 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pglabd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	durable := fs.Bool("durable", false, "keep fsync on (for benchmarks); tests run with fsync off")
	dir := fs.String("dir", "", "`folder` for the data directory (default: the temporary folder)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pglabd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	c, err := pglab.Launch(ctx, pglab.Options{Durable: *durable, Dir: *dir, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "dsn %s\nready\n", c.DSN)
	<-ctx.Done()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
