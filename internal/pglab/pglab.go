// Package pglab gives tests and benchmarks a real PostgreSQL server on
// loopback: Debian's postgresql-15 binaries run as a private cluster in a
// temporary data directory (initdb, no system service), and every test gets
// a fresh, empty database of its own on it.
//
// The server is found in this order:
//
//  1. GMAILTLS_TEST_POSTGRES, the connection string of a superuser on a
//     running server (.ci/run starts one with pglabd and sets it, so that
//     every test binary shares one server);
//  2. a private cluster started by this test binary on first use, with
//     the initdb and postgres of /usr/lib/postgresql/*/bin; it stops when
//     [Main] returns (use it from TestMain), or at the test's cleanup when
//     the package has no TestMain calling Main.
//
// When neither can run, [Require] skips the test, except under CI=true,
// where a missing PostgreSQL is a broken CI and fails it.
package pglab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the variable holding a superuser connection string of a
// running server for the tests.
const EnvDSN = "GMAILTLS_TEST_POSTGRES"

// Options tune a private cluster.
type Options struct {
	// Durable keeps fsync on, for benchmarks that must measure what a
	// production server does; tests run with fsync off. Either way
	// synchronous_commit is off, PostgreSQL's equivalent of SQLite's
	// synchronous=NORMAL in WAL mode (a crash may lose the last commits,
	// never the database).
	Durable bool
	// Dir is where the data directory is made; "" is the system's
	// temporary folder.
	Dir string
	// Log, when set, receives the server's output.
	Log *os.File
}

// Cluster is a running private PostgreSQL cluster.
type Cluster struct {
	// DSN is the superuser's connection string (database postgres).
	DSN  string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	stopOnce sync.Once
}

// binDir finds the newest installed PostgreSQL's programs.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d, nil
			}
		}
	}
	return "", errors.New("pglab: PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): " +
		"apt-get install --no-install-recommends postgresql-15, as .ci/run does, or set " + EnvDSN)
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// runAs returns the credentials the server runs under: root may not run
// PostgreSQL, so root runs it as the postgres user the package created.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pglab: running as root, PostgreSQL must run as another user and there is no postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Launch initialises and starts a private cluster on 127.0.0.1 and returns
// once it accepts connections. Stop ends it and removes its data.
func Launch(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.Dir, "gmailtls-pglab-")
	if err != nil {
		return nil, fmt.Errorf("pglab: make the data folder: %w", err)
	}
	c := &Cluster{dir: dir, done: make(chan struct{})}
	fail := func(err error) (*Cluster, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("pglab: give the data folder to postgres: %w", err))
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pglab: initdb: %w\n%s", err, out))
	}
	port, err := freePort()
	if err != nil {
		return fail(fmt.Errorf("pglab: find a free port: %w", err))
	}
	fsync := "off"
	if opts.Durable {
		fsync = "on"
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync="+fsync,
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes="+fsync,
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
		"-c", "log_min_messages=warning",
	)
	c.cmd.Dir = dir
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if opts.Log != nil {
		c.cmd.Stdout, c.cmd.Stderr = opts.Log, opts.Log
	}
	if err := c.cmd.Start(); err != nil {
		return fail(fmt.Errorf("pglab: start postgres: %w", err))
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	c.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.DSN)
		if err == nil {
			_ = conn.Close(ctx)
			return c, nil
		}
		select {
		case <-c.done:
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pglab: postgres exited at start: %v", c.err)
		case <-ctx.Done():
			_ = c.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = c.Stop()
			return nil, fmt.Errorf("pglab: postgres did not accept connections within 30 s: %w", err)
		}
	}
}

// Stop ends the server (a fast shutdown) and removes its data folder.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		_ = os.RemoveAll(c.dir)
	})
	return nil
}

var (
	mu      sync.Mutex
	shared  *Cluster // started by this binary, stopped by Main
	inMain  bool
	checked = sync.OnceValue(func() error {
		if os.Getenv(EnvDSN) != "" {
			return nil
		}
		if _, err := binDir(); err != nil {
			return err
		}
		_, err := runAs()
		return err
	})
)

// Check reports why no PostgreSQL can run for the tests, or nil.
func Check() error { return checked() }

// Require skips tb when no PostgreSQL can run here, or fails it under
// CI=true. NewDatabase calls it.
func Require(tb testing.TB) {
	tb.Helper()
	err := Check()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("PostgreSQL must run under CI: %v", err)
	}
	tb.Skipf("skipping the PostgreSQL tests: %v", err)
}

// Main runs the tests of m and stops the private cluster, if any test
// started one. Call it from TestMain: os.Exit(pglab.Main(m)).
func Main(m *testing.M) int {
	mu.Lock()
	inMain = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		_ = shared.Stop()
		shared = nil
	}
	return code
}

// server returns the superuser connection string of the server to use.
func server(tb testing.TB) string {
	tb.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		return shared.DSN
	}
	c, err := Launch(context.Background(), Options{})
	if err != nil {
		tb.Fatalf("start a private PostgreSQL: %v", err)
	}
	if inMain {
		shared = c
	} else {
		tb.Cleanup(func() { _ = c.Stop() })
	}
	return c.DSN
}

// NewDatabase creates an empty database for tb on the lab server and
// returns its connection string; the database is dropped at cleanup. It
// skips tb when PostgreSQL cannot run here (fails it under CI=true).
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	Require(tb)
	admin := server(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gmailtls_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect to the lab PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		tb.Fatalf("create the test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(admin, name)
}

// withDatabase returns dsn aimed at database name.
func withDatabase(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		// A keyword/value string: a later dbname wins.
		return strings.TrimSpace(dsn) + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}
