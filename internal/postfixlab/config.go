package postfixlab

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// layout is the directory tree of one instance.
type layout struct {
	dir      string // the instance's temporary directory
	conf     string // MAIL_CONFIG: main.cf and master.cf
	queue    string
	data     string
	tls      string
	maillog  string
	caFile   string
	greet421 string // the cidr table of Greet421
}

func newLayout(dir string) layout {
	return layout{
		dir:      dir,
		conf:     filepath.Join(dir, "conf"),
		queue:    filepath.Join(dir, "queue"),
		data:     filepath.Join(dir, "data"),
		tls:      filepath.Join(dir, "tls"),
		maillog:  filepath.Join(dir, "maillog"),
		caFile:   filepath.Join(dir, "tls", "ca.pem"),
		greet421: filepath.Join(dir, "conf", "greet421.cidr"),
	}
}

// queueDir is one directory of the queue, with the owner and mode
// Postfix's postfix-files gives it.
type queueDir struct {
	name   string
	owner  string // "root" or "mail_owner"
	setgid bool   // group setgid_group (postdrop)
	perm   os.FileMode
}

// queueDirs are the queue's subdirectories (postfix-files).
var queueDirs = []queueDir{
	{name: "active", owner: "mail_owner", perm: 0o700},
	{name: "bounce", owner: "mail_owner", perm: 0o700},
	{name: "corrupt", owner: "mail_owner", perm: 0o700},
	{name: "defer", owner: "mail_owner", perm: 0o700},
	{name: "deferred", owner: "mail_owner", perm: 0o700},
	{name: "flush", owner: "mail_owner", perm: 0o700},
	{name: "hold", owner: "mail_owner", perm: 0o700},
	{name: "incoming", owner: "mail_owner", perm: 0o700},
	{name: "private", owner: "mail_owner", perm: 0o700},
	{name: "saved", owner: "mail_owner", perm: 0o700},
	{name: "trace", owner: "mail_owner", perm: 0o700},
	{name: "maildrop", owner: "mail_owner", setgid: true, perm: 0o730},
	{name: "public", owner: "mail_owner", setgid: true, perm: 0o710},
	{name: "pid", owner: "root", perm: 0o755},
}

// makeTree creates the instance's directories with Postfix's owners and
// modes. uid and gid are mail_owner's user id and setgid_group's group id.
func makeTree(l layout, uid, gid int) error {
	mk := func(path string, perm os.FileMode, owner, group int) error {
		if err := os.Mkdir(path, perm); err != nil {
			return fmt.Errorf("postfixlab: make %s: %w", path, err)
		}
		// Mkdir applies the umask; Postfix wants the exact mode.
		if err := os.Chmod(path, perm); err != nil {
			return fmt.Errorf("postfixlab: chmod %s: %w", path, err)
		}
		if err := os.Chown(path, owner, group); err != nil {
			return fmt.Errorf("postfixlab: chown %s: %w", path, err)
		}
		return nil
	}
	for _, d := range []string{l.conf, l.tls, l.queue} {
		if err := mk(d, 0o755, 0, 0); err != nil {
			return err
		}
	}
	if err := mk(l.data, 0o700, uid, 0); err != nil {
		return err
	}
	for _, q := range queueDirs {
		owner, group := 0, 0
		if q.owner == "mail_owner" {
			owner = uid
		}
		if q.setgid {
			group = gid
		}
		if err := mk(filepath.Join(l.queue, q.name), q.perm, owner, group); err != nil {
			return err
		}
	}
	return nil
}

// mainCF is the instance's main.cf: everything in the temporary directory,
// no DNS, no mail delivered anywhere, and the whole log in l.maillog.
func mainCF(l layout, hostname string, ipv6 bool, extra []string) string {
	protocols := "ipv4"
	if ipv6 {
		protocols = "all"
	}
	lines := []string{
		"# Written by gmailtls's internal/postfixlab: a private instance on loopback.",
		"compatibility_level = 3.6",
		"queue_directory = " + l.queue,
		"data_directory = " + l.data,
		"mail_owner = " + mailOwner,
		"setgid_group = " + setgidGroup,
		"myhostname = " + hostname,
		"mydomain = test.example",
		"myorigin = $myhostname",
		"mydestination =",
		"relay_domains =",
		"inet_interfaces = loopback-only",
		"inet_protocols = " + protocols,
		"mynetworks = 127.0.0.0/8 [::1]/128",
		"maillog_file = " + l.maillog,
		"maillog_file_prefixes = " + l.dir,
		"alias_maps =",
		"alias_database =",
		"local_recipient_maps =",
		"notify_classes =",
		"biff = no",
		"default_transport = error:the Postfix lab delivers no mail",
		"smtpd_peername_lookup = no",
		"smtpd_banner = $myhostname ESMTP Postfix (gmailtls lab)",
		"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
		"smtpd_tls_loglevel = 1",
		"smtp_tls_loglevel = 1",
	}
	lines = append(lines, extra...)
	return strings.Join(lines, "\n") + "\n"
}

// masterServices are the internal services every instance runs, all with
// chroot = n.
const masterServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// masterCF is the instance's master.cf: one smtpd per listener, then the
// internal services. plainNames keeps Postfix's own syslog names
// (postfix/smtpd); otherwise each listener logs as postfix/KIND/smtpd.
func masterCF(l layout, listeners []Listener, certs labCerts, slow time.Duration, plainNames bool) string {
	var b strings.Builder
	b.WriteString("# Written by gmailtls's internal/postfixlab: one smtpd per lab listener.\n")
	for _, ln := range listeners {
		fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", ln.Addr)
		if !plainNames {
			fmt.Fprintf(&b, "  -o syslog_name=postfix/%s\n", ln.Kind)
		}
		for _, o := range kindOptions(l, ln.Kind, certs, slow) {
			fmt.Fprintf(&b, "  -o { %s }\n", o)
		}
	}
	b.WriteString(masterServices)
	return b.String()
}

// kindOptions are the smtpd parameters of a listener of kind k.
func kindOptions(l layout, k Kind, certs labCerts, slow time.Duration) []string {
	tls := func(f certFiles) []string {
		return []string{
			"smtpd_tls_security_level = may",
			"smtpd_tls_cert_file = " + f.cert,
			"smtpd_tls_key_file = " + f.key,
		}
	}
	switch k {
	case TLS11Only:
		return append(tls(certs.ok), "smtpd_tls_protocols = !SSLv2, !SSLv3, !TLSv1.2, !TLSv1.3")
	case ExpiredCert:
		return tls(certs.expired)
	case WrongNameCert:
		return tls(certs.wrongName)
	case UntrustedCA:
		return tls(certs.untrusted)
	case NoSTARTTLS:
		return []string{"smtpd_tls_security_level = none"}
	case StartTLS454:
		return tls(certs.missing)
	case Greet421:
		return []string{"smtpd_tls_security_level = none", "smtpd_delay_reject = no",
			"smtpd_client_restrictions = cidr:" + l.greet421}
	case NoSharedCipher:
		return append(tls(certs.ok),
			"smtpd_tls_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3",
			"smtpd_tls_ciphers = high",
			"tls_high_cipherlist = ECDHE-ECDSA-CAMELLIA128-SHA256")
	case SlowGreeting:
		secs := int(math.Ceil(slow.Seconds()))
		return append(tls(certs.ok), "smtpd_delay_reject = no",
			fmt.Sprintf("smtpd_client_restrictions = sleep %d", max(secs, 1)))
	}
	return tls(certs.ok)
}

// greet421Table is the cidr table of Greet421: every loopback client gets
// 421 at connection time.
const greet421Table = `127.0.0.0/8 421 4.7.0 Try again later, closing connection
::1/128 421 4.7.0 Try again later, closing connection
`
