// Package postfixlab runs Debian's Postfix as private instances on
// loopback, so that gmailtls's probe engine is tested and benchmarked
// against a real MTA and not only against internal/smtptest's scripted
// server. Tests, benchmarks and contributors share it: Start and StartRelay
// for tests, Launch and LaunchRelay for programs, and the command
// postfixlabd for a person:
//
//	go run ./internal/postfixlab/postfixlabd            # every kind, plus IPv6 and the relay
//	gmailtls probe --mx 127.0.0.1:PORT --servername mx.test.example --ca-file CA
//
// An Instance is one Postfix master with one smtpd listener per Listener,
// each a Kind: a working STARTTLS server (OK) or one of the failures
// Postfix itself can express (TLS 1.1 at most, an expired certificate, a
// wrong name, an untrusted CA, no STARTTLS, 454 to STARTTLS, a 421
// greeting, no shared cipher, a slow greeting). A Relay is an instance that
// routes gmail.com, googlemail.com and workspace-customer.test to a lab MX
// that resets every TLS handshake, with smtp_tls_security_level = encrypt:
// fed a few messages over SMTP, its mail log and deferred queue hold the
// real "SSL_connect error to …: Connection reset by peer" and
// "status=deferred (Cannot start TLS: handshake failure)" lines.
//
// # The recipe
//
// It needs Linux, root, and the postfix package (3.4 or later, for
// maillog_file) with the postfix user and the postdrop group it creates.
// Nothing of the system's Postfix is used or touched: /etc/postfix may lack
// a main.cf altogether (Debian's "No configuration"), no system service
// needs to run, port 25 is never used. Each instance lives in its own
// temporary directory:
//
//	conf/main.cf, conf/master.cf   the instance's MAIL_CONFIG directory
//	queue/                         queue_directory
//	data/                          data_directory
//	tls/                           certificates and keys made in Go (PEM)
//	maillog                        maillog_file: the instance's whole log
//
// The minimal reliable recipe, found by trying the alternatives:
//
//   - The queue directories are made here, with the owners and modes of
//     Postfix's postfix-files (queue/ root 0755; active, bounce, corrupt,
//     defer, deferred, flush, hold, incoming, private, saved, trace
//     postfix 0700; maildrop postfix:postdrop 0730; public
//     postfix:postdrop 0710; pid root 0755; data/ postfix 0700).
//     "postfix -c DIR set-permissions" does the same in 3.5 s and also
//     rewrites the ownership of the system's Postfix binaries.
//   - master is started directly as "$daemon_directory/master -c DIR -s",
//     a child of the test: it stays in the foreground, makes itself a
//     session and process-group leader, and its children stay in that
//     group. "postfix start-fg" would first run postfix-script's integrity
//     checks (seconds) and "master -i" requires PID 1. Every master.cf
//     service has chroot = n, as the queue is not under /var/spool.
//   - Logging: maillog_file = DIR/maillog with maillog_file_prefixes = DIR
//     and the postlog service in master.cf; no syslog is needed. master
//     logs "daemon started" once its listeners are bound: that line is
//     the readiness signal. (master reports a bad main.cf to syslog alone,
//     before it reads maillog_file; Launch then reports master's exit
//     status and the warnings of postconf -n and -M.)
//   - Every Postfix command is given -c DIR (postconf, postqueue,
//     postsuper); as root, a non-default configuration directory needs no
//     alternate_config_directories entry in /etc/postfix/main.cf.
//   - Ports: each listener's port is reserved by a Go listener with
//     SO_REUSEPORT until master (which sets SO_REUSEPORT too, as the same
//     user) has bound it beside, so two instances started at once by
//     different test processes never share a port.
//   - No DNS, no mail leaves: smtpd_peername_lookup = no, notify_classes
//     empty, default_transport = error; a relay's transport_maps name
//     [127.0.0.1]:port next hops only.
//   - Stop sends SIGTERM to master (which stops its children) and, after
//     5 s, SIGKILL to its process group; on Linux master also gets SIGTERM
//     when the process that started it dies (Pdeathsig).
//
// CI installs the package without starting a system Postfix (.ci/run).
// When Postfix is missing, Start and StartRelay skip the test with the
// reason, except under CI=true, where they fail it.
package postfixlab
