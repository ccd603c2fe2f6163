// Command postfixlabd runs the Postfix test bed of internal/postfixlab on
// loopback until SIGINT or SIGTERM, so that a person or a script
// (bench/compare-openssl.sh) can aim gmailtls, openssl or Postfix's own
// tools at a real MTA. It needs root and Debian's postfix package:
//
//	go run ./internal/postfixlab/postfixlabd                 # every kind, IPv6 and the relay
//	go run ./internal/postfixlab/postfixlabd -kinds ok -relay=false
//	gmailtls probe --mx 127.0.0.1:PORT --servername mx.test.example --ca-file CA
//
// Once everything accepts connections it prints one line per fact, words
// separated by single spaces, and nothing else on standard output:
//
//	listening KIND ADDR          one per listener ("ok" on ::1 too, with -ipv6)
//	ca FILE                      the lab CA, for --ca-file / openssl -CAfile
//	servername NAME              the certificates' name, for --servername
//	config DIR                   MAIL_CONFIG, for postconf -c DIR
//	log FILE                     the instance's maillog_file
//	relay ADDR                   the relay's smtpd, which accepts mail from loopback
//	relay-mx ADDR                the lab MX the relay's messages are deferred against
//	relay-config DIR             for postqueue -j -c DIR, postconf -c DIR
//	relay-log FILE               the relay's maillog_file
//	ready
//
// -list prints every kind with a description and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, serves until ctx ends and returns the exit status: 0
// after a clean stop, 1 on a runtime error, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("postfixlabd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kinds := fs.String("kinds", "all", "comma-separated `kinds` of listener, or \"all\" (see -list)")
	ipv6 := fs.Bool("ipv6", true, "add an ok listener on [::1] when the machine has IPv6 loopback")
	relay := fs.Bool("relay", true, "also run the relay with its deferred queue")
	messages := fs.Int("messages", 0, "messages the relay is fed (default: one per relayed domain)")
	hostname := fs.String("hostname", "mx.test.example", "myhostname and certificate `name`")
	slow := fs.Duration("slow-greeting", postfixlab.DefaultSlowGreeting, "delay of the slow_greeting listener")
	keep := fs.Bool("keep", false, "keep the instance directories after stopping")
	list := fs.Bool("list", false, "print every kind with a description and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "postfixlabd: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *list {
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		for _, k := range postfixlab.Kinds() {
			fmt.Fprintf(tw, "%s\t%s\n", k, k.Description())
		}
		_ = tw.Flush()
		return 0
	}
	var listeners []postfixlab.Listener
	if *kinds == "all" {
		for _, k := range postfixlab.Kinds() {
			listeners = append(listeners, postfixlab.Listener{Kind: k})
		}
	} else {
		for s := range strings.SplitSeq(*kinds, ",") {
			k, err := postfixlab.ParseKind(s)
			if err != nil {
				fmt.Fprintln(stderr, "postfixlabd:", err)
				return 2
			}
			listeners = append(listeners, postfixlab.Listener{Kind: k})
		}
	}
	if *ipv6 && postfixlab.IPv6Loopback() {
		listeners = append(listeners, postfixlab.Listener{Kind: postfixlab.OK, IPv6: true})
	}
	if err := postfixlab.Check(); err != nil {
		fmt.Fprintln(stderr, "postfixlabd:", err)
		return 1
	}

	in, err := postfixlab.Launch(postfixlab.Options{Listeners: listeners, Hostname: *hostname, SlowGreeting: *slow, Keep: *keep})
	if err != nil {
		fmt.Fprintln(stderr, "postfixlabd:", err)
		return 1
	}
	defer stopAndReport(in.Stop, stderr)
	for _, ln := range in.Listeners() {
		fmt.Fprintf(stdout, "listening %s %s\n", ln.Kind, ln.Addr)
	}
	fmt.Fprintf(stdout, "ca %s\nservername %s\nconfig %s\nlog %s\n", in.CAFile(), in.Hostname(), in.ConfigDir(), in.LogPath())
	if *relay {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := postfixlab.LaunchRelay(rctx, postfixlab.RelayOptions{Messages: *messages, Keep: *keep})
		cancel()
		if err != nil {
			fmt.Fprintln(stderr, "postfixlabd:", err)
			return 1
		}
		defer stopAndReport(r.Stop, stderr)
		fmt.Fprintf(stdout, "relay %s\nrelay-mx %s\nrelay-config %s\nrelay-log %s\n",
			r.Addr(postfixlab.OK), r.MX.Addr(), r.ConfigDir(), r.LogPath())
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	return 0
}

func stopAndReport(stop func() error, stderr io.Writer) {
	if err := stop(); err != nil {
		fmt.Fprintln(stderr, "postfixlabd:", err)
	}
}
