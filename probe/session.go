package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// variant is a ClientHello shape: the default one, or a narrower one tried
// after the default hello was reset or timed out.
type variant int

const (
	variantDefault variant = iota
	// variantClassic offers classic key exchange only: no post-quantum
	// hybrid key share, so the ClientHello is about 1 KB smaller.
	variantClassic
	// variantTLS12 offers TLS 1.2 only (still never less).
	variantTLS12
)

// retryNote starts the transcript note of each retry.
const retryNote = Note + "retry with "

// classicCurves are the key exchanges of variantClassic and variantTLS12.
var classicCurves = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}

// name is the TLSInfo.Variant string.
func (v variant) name() string {
	switch v {
	case variantClassic:
		return "classic_kex"
	case variantTLS12:
		return "tls12_only"
	}
	return ""
}

func (v variant) describe() string {
	switch v {
	case variantClassic:
		return "classic key exchange only (X25519, P-256, P-384; no post-quantum key share)"
	case variantTLS12:
		return "TLS 1.2 only"
	}
	return "the default ClientHello"
}

// ProbeOne runs one probe toward ep with cfg's settings (its MX, Domain and
// Sources are not used) and returns the result. Every problem of the probe,
// including a canceled ctx, is a failure class in the Result; the error is
// non-nil (ErrConfig) only when cfg or ep cannot run. On tls_reset or
// tls_timeout it retries with narrower ClientHellos unless cfg.NoRetry.
func ProbeOne(ctx context.Context, cfg Config, ep Endpoint) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	if !ep.IP.IsValid() || ep.Port < 0 || ep.Port > 65535 {
		return Result{}, fmt.Errorf("%w: endpoint %s needs an IP address and a port", ErrConfig, ep.MX)
	}
	return probeOne(ctx, &cfg, ep), nil
}

func probeOne(ctx context.Context, cfg *Config, ep Endpoint) Result {
	if ep.Port == 0 {
		ep.Port = DefaultPort
	}
	ep.IP = ep.IP.Unmap()
	a := runAttempt(ctx, cfg, ep, variantDefault)
	hints := a.hints
	if !cfg.NoRetry && (a.res.Failure == FailTLSReset || a.res.Failure == FailTLSTimeout) {
		hints = append(hints, retryNarrower(ctx, cfg, ep, &a.res, a.helloBytes)...)
	}
	res := a.res
	if h := Hint(res.Failure); h != "" {
		res.Hints = append(res.Hints, h)
	}
	res.Hints = append(res.Hints, hints...)
	cfg.Logger.LogAttrs(ctx, levelFor(res), "probe finished",
		slogAttrs(res)...)
	return res
}

// retryNarrower reconnects with the classic-key-exchange hello, then the
// TLS 1.2-only hello, until one completes the handshake. It records the
// working variant in res.TLS and the retries in res.Transcript, and
// returns the hints that say what the retries showed.
func retryNarrower(ctx context.Context, cfg *Config, ep Endpoint, res *Result, defaultHello int) []string {
	tried := 0
	for _, v := range []variant{variantClassic, variantTLS12} {
		if ctx.Err() != nil {
			break
		}
		a := runAttempt(ctx, cfg, ep, v)
		res.Transcript = append(res.Transcript, retryNote+v.describe())
		res.Transcript = append(res.Transcript, a.res.Transcript...)
		if a.handshakeDone {
			info := a.res.TLS
			info.Variant = v.name()
			res.TLS = info
			return []string{successHint(v, defaultHello, a.helloBytes)}
		}
		if a.res.Stage == StageHandshake {
			tried++
		}
	}
	switch tried {
	case 2:
		return []string{"the handshake also fails without the post-quantum key share and with TLS 1.2 only: " +
			"the size of the ClientHello is not the cause; check the path and the peer's TLS stack"}
	case 1:
		return []string{"one narrower ClientHello also failed and the other retry did not reach the TLS handshake: " +
			"inconclusive about the ClientHello's size"}
	}
	return []string{"the retries with narrower ClientHellos did not reach the TLS handshake, so they show nothing about its size"}
}

func successHint(v variant, defaultHello, variantHello int) string {
	sizes := ""
	if defaultHello > 0 && variantHello > 0 {
		sizes = fmt.Sprintf(" (ClientHello of %d bytes fails, %d bytes works)", defaultHello, variantHello)
	}
	if v == variantClassic {
		return "the handshake succeeds without the post-quantum key share: a middlebox on the path drops large ClientHellos" + sizes
	}
	return "the handshake succeeds only with TLS 1.2: a middlebox on the path mishandles TLS 1.3 ClientHellos" + sizes
}

// attempt is one SMTP session toward an endpoint with one ClientHello
// variant.
type attempt struct {
	cfg *Config
	ep  Endpoint
	v   variant
	res Result
	// hints are the result's specific hints, after the class hint.
	hints []string

	conn net.Conn // the raw connection, then the TLS connection
	br   *bufio.Reader

	handshakeDone bool
	helloBytes    int
}

func runAttempt(ctx context.Context, cfg *Config, ep Endpoint, v variant) *attempt {
	a := &attempt{cfg: cfg, ep: ep, v: v}
	a.res = Result{
		Relay:      cfg.Relay,
		Engine:     EngineNative,
		MX:         ep.MX,
		Preference: ep.Preference,
		IP:         ep.IP.String(),
		Port:       ep.Port,
		ServerName: serverName(cfg, ep),
		StartedAt:  cfg.Now(),
		Hints:      []string{},
		Transcript: []string{},
	}
	if ep.Source.IsValid() {
		a.res.SourceIP = ep.Source.String()
	}
	a.run(ctx)
	a.res.Timings.DNS = ep.dnsMS
	a.res.Timings.Total = ms(cfg.Now().Sub(a.res.StartedAt))
	return a
}

// serverName is the SNI and verification name: cfg.ServerName, else the MX
// host name (an IP literal when the MX was pinned as one).
func serverName(cfg *Config, ep Endpoint) string {
	switch {
	case cfg.ServerName != "":
		return cfg.ServerName
	case ep.MX != "":
		return ep.MX
	}
	return ep.IP.String()
}

func (a *attempt) run(ctx context.Context) {
	cfg := a.cfg
	addr := netip.AddrPortFrom(a.ep.IP, uint16(a.ep.Port)).String()

	// connect
	t := cfg.Now()
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeouts.Connect)
	conn, err := cfg.Dialer.DialContext(dctx, "tcp", addr, a.ep.Source)
	cancel()
	a.res.Timings.Connect = ms(cfg.Now().Sub(t))
	if err != nil {
		from := ""
		if a.ep.Source.IsValid() {
			from = " from " + a.ep.Source.String()
		}
		a.fail(StageConnect, fmt.Errorf("connect to %s%s: %w", addr, from, err))
		return
	}
	defer conn.Close()
	conn = quickAck(conn)
	// A canceled ctx ends any read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
		a.res.SourceIP = ap.Addr().Unmap().WithZone("").String()
	}
	a.note(fmt.Sprintf("connected to %s from %s", addr, a.res.SourceIP))
	a.conn = conn
	a.br = bufio.NewReaderSize(conn, cfg.MaxLineBytes+2)

	// banner
	t = cfg.Now()
	a.deadline(ctx, cfg.Timeouts.Banner)
	rep, err := a.read()
	a.res.Timings.Banner = ms(cfg.Now().Sub(t))
	if err != nil {
		a.fail(StageBanner, fmt.Errorf("reading the greeting: %w", err))
		return
	}
	if rep.Code != 220 {
		if rep.Code >= 400 {
			a.reject(StageBanner, "the greeting", rep)
			a.quit()
			return
		}
		a.fail(StageBanner, fmt.Errorf("%w: greeting with code %d, want 220", ErrProtocol, rep.Code))
		return
	}
	_, _, greeting, _ := splitReplyLine(rep.Lines[0])
	masked := maskedGreeting(greeting)
	if masked {
		a.hints = append(a.hints, "the greeting is masked with asterisks: SMTP inspection "+
			"(e.g. Cisco ASA ESMTP inspection) rewrites this session; disable SMTP inspection on the port-25 path")
	}

	// ehlo
	t = cfg.Now()
	a.deadline(ctx, cfg.Timeouts.EHLO)
	rep, err = a.cmd("EHLO " + cfg.HelloName)
	a.res.Timings.EHLO = ms(cfg.Now().Sub(t))
	if err != nil {
		a.fail(StageEHLO, fmt.Errorf("EHLO: %w", err))
		return
	}
	if rep.Code/100 != 2 {
		if rep.Code >= 400 {
			a.reject(StageEHLO, "EHLO", rep)
			a.quit()
			return
		}
		a.fail(StageEHLO, fmt.Errorf("%w: EHLO answered %d, want 250", ErrProtocol, rep.Code))
		return
	}
	ehlo := parseEHLO(rep)
	if !ehlo.has("STARTTLS") {
		switch {
		case ehlo.maskedStartTLS():
			a.failClass(StageEHLO, FailStartTLSMasked, errors.New("the EHLO reply lists XXXXXXXA where STARTTLS belongs"))
			a.hints = append(a.hints, "XXXXXXXA in the EHLO reply is STARTTLS overwritten by SMTP inspection (Cisco ASA/PIX ESMTP inspection)")
		case masked || len(ehlo.Masked) > 0:
			a.failClass(StageEHLO, FailStartTLSMasked, errors.New("STARTTLS is missing from an EHLO reply that SMTP inspection rewrote"))
		default:
			a.failClass(StageEHLO, FailStartTLSNotOffered, errors.New("the EHLO reply does not offer STARTTLS"))
		}
		a.quit()
		return
	}

	// starttls
	t = cfg.Now()
	a.deadline(ctx, cfg.Timeouts.StartTLS)
	rep, err = a.cmd("STARTTLS")
	a.res.Timings.StartTLS = ms(cfg.Now().Sub(t))
	if err != nil {
		a.fail(StageStartTLS, fmt.Errorf("STARTTLS: %w", err))
		return
	}
	if rep.Code != 220 {
		a.res.SMTPCode, a.res.SMTPText = rep.Code, rep.Text()
		if rep.Code == 500 || rep.Code == 502 {
			a.failClass(StageStartTLS, FailStartTLSMasked,
				fmt.Errorf("STARTTLS was offered but answered %d as if unknown", rep.Code))
			a.hints = append(a.hints, fmt.Sprintf("a %d answer to an offered STARTTLS is the signature of SMTP inspection on the path", rep.Code))
		} else {
			a.failClass(StageStartTLS, FailStartTLSRejected, fmt.Errorf("STARTTLS answered %d", rep.Code))
		}
		a.quit()
		return
	}
	if n := a.br.Buffered(); n > 0 {
		a.fail(StageStartTLS, fmt.Errorf("%w: %d bytes arrived after the 220 to STARTTLS, before TLS began", ErrProtocol, n))
		return
	}

	// handshake and verify
	if !a.handshake(ctx, conn) {
		return
	}

	// post_tls
	t = cfg.Now()
	a.deadline(ctx, cfg.Timeouts.PostTLS)
	rep, err = a.cmd("EHLO " + cfg.HelloName)
	if err != nil {
		a.res.Timings.PostTLS = ms(cfg.Now().Sub(t))
		a.fail(StagePostTLS, fmt.Errorf("EHLO over TLS: %w", err))
		return
	}
	if rep.Code/100 != 2 {
		a.res.Timings.PostTLS = ms(cfg.Now().Sub(t))
		a.res.SMTPCode, a.res.SMTPText = rep.Code, rep.Text()
		a.failClass(StagePostTLS, FailPostTLS, fmt.Errorf("EHLO over TLS answered %d", rep.Code))
		a.quit()
		return
	}
	a.quit()
	_ = a.conn.Close() // close_notify, then the TCP connection
	a.res.Timings.PostTLS = ms(cfg.Now().Sub(t))
	a.res.OK = true
}

// handshake runs TLS over conn after a successful STARTTLS and verifies
// the peer's chain. It reports whether the session may go on.
func (a *attempt) handshake(ctx context.Context, conn net.Conn) bool {
	cfg := a.cfg
	t := cfg.Now()
	a.deadline(ctx, cfg.Timeouts.Handshake)
	sn := &sniffConn{Conn: conn}
	name := a.res.ServerName
	var presented *TLSInfo
	tcfg := &tls.Config{
		ServerName:         name,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below, in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := verifyChain(cs, name, cfg.RootCAs, cfg.ExtraRoots, cfg.Now(), cfg.chains); err != nil {
				// What the server presented explains the failure; after a
				// success, the result describes the connection instead.
				presented = tlsInfo(cs, false, cfg.Now())
				return &verifyError{err: err}
			}
			return nil
		},
	}
	if a.v != variantDefault {
		tcfg.CurvePreferences = classicCurves
	}
	if a.v == variantTLS12 {
		tcfg.MaxVersion = tls.VersionTLS12
	}
	tc := tls.Client(sn, tcfg)
	if _, err := netip.ParseAddr(name); err == nil {
		a.note("TLS handshake started, verifying for " + name + " (no SNI for an IP address)")
	} else {
		a.note("TLS handshake started, SNI " + name)
	}
	err := tc.HandshakeContext(ctx)
	a.helloBytes = sn.out.firstHandshake
	a.res.Timings.Handshake = ms(cfg.Now().Sub(t))
	if err != nil {
		var ve *verifyError
		if errors.As(err, &ve) {
			a.handshakeDone = true
			a.res.TLS = presented
			a.fail(StageVerify, ve)
			a.hints = append(a.hints, certHints(a.res.Failure, presented, name, cfg.Now())...)
			return false
		}
		a.fail(StageHandshake, fmt.Errorf("TLS handshake: %w", sn.attachAlert(err)))
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) {
			a.hints = append(a.hints, fmt.Sprintf("the server answered the ClientHello with plain text, not TLS: %q", sn.plainHead()))
		}
		return false
	}
	a.handshakeDone = true
	a.res.TLS = tlsInfo(tc.ConnectionState(), true, cfg.Now())
	info := a.res.TLS
	a.note(fmt.Sprintf("%s, %s, %s; certificate verified for %s", info.Version, info.Cipher, info.Group, name))
	a.conn = tc
	// The reader is empty (checked after the 220 to STARTTLS): reuse its
	// buffer for the TLS connection.
	a.br.Reset(tc)
	return true
}

// Bounds on what a TLSInfo records of a hostile chain.
const (
	maxChain = 8
	maxSANs  = 32
)

// tlsInfo summarises a connection state.
func tlsInfo(cs tls.ConnectionState, verified bool, now time.Time) *TLSInfo {
	info := &TLSInfo{
		Version:          tls.VersionName(cs.Version),
		Cipher:           tls.CipherSuiteName(cs.CipherSuite),
		Verified:         verified,
		PeerCertificates: []Certificate{},
	}
	if cs.CurveID != 0 {
		info.Group = cs.CurveID.String()
	}
	for i, c := range cs.PeerCertificates {
		if i == maxChain {
			break
		}
		sans := make([]string, 0, len(c.DNSNames)+len(c.IPAddresses))
		sans = append(sans, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			sans = append(sans, ip.String())
		}
		if len(sans) > maxSANs {
			sans = append(sans[:maxSANs], fmt.Sprintf("… %d more", len(sans)-maxSANs))
		}
		info.PeerCertificates = append(info.PeerCertificates, Certificate{
			Subject:  c.Subject.String(),
			Issuer:   c.Issuer.String(),
			SANs:     sans,
			NotAfter: c.NotAfter.UTC(),
			DaysLeft: int(math.Floor(c.NotAfter.Sub(now).Hours() / 24)),
		})
	}
	return info
}

// certHints explains a verification failure from the presented chain.
func certHints(f Failure, info *TLSInfo, name string, now time.Time) []string {
	if info == nil || len(info.PeerCertificates) == 0 {
		return nil
	}
	leaf := info.PeerCertificates[0]
	var hints []string
	switch f {
	case FailCertExpired:
		if leaf.DaysLeft < 0 {
			hints = append(hints, fmt.Sprintf("the certificate expired on %s; this host's clock says %s",
				leaf.NotAfter.Format(time.DateOnly), now.UTC().Format(time.DateOnly)))
		} else {
			hints = append(hints, fmt.Sprintf("the certificate is not yet valid by this host's clock (%s)",
				now.UTC().Format(time.RFC3339)))
		}
	case FailCertHostname:
		names := leaf.SANs
		if len(names) > 4 {
			names = append(names[:4:4], "…")
		}
		hints = append(hints, fmt.Sprintf("the certificate names %s, not %s", strings.Join(names, ", "), name))
	}
	if f == FailCertUntrusted || f == FailCertHostname {
		if issuedByGoogle(info) {
			hints = append(hints, "the chain is issued by Google Trust Services but does not verify here: update this host's CA bundle")
		} else {
			hints = append(hints, fmt.Sprintf("TLS interception suspected: the certificate is issued by %q, not Google Trust Services", leaf.Issuer))
		}
	}
	return hints
}

// issuedByGoogle reports whether the leaf's issuer is Google Trust Services.
func issuedByGoogle(info *TLSInfo) bool {
	return strings.Contains(info.PeerCertificates[0].Issuer, "O=Google Trust Services")
}

// deadline bounds the next stage by d, or by ctx's deadline when sooner.
// Socket deadlines are wall-clock times, hence time.Now.
func (a *attempt) deadline(ctx context.Context, d time.Duration) {
	dl := time.Now().Add(d)
	if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
		dl = cd
	}
	if ctx.Err() != nil {
		dl = time.Unix(1, 0)
	}
	_ = a.conn.SetDeadline(dl)
}

// cmd sends one command line and reads its reply.
func (a *attempt) cmd(line string) (reply, error) {
	a.res.Transcript = append(a.res.Transcript, FromClient+line)
	if _, err := io.WriteString(a.conn, line+"\r\n"); err != nil {
		return reply{}, err
	}
	return a.read()
}

// read reads one reply and records its lines in the transcript.
func (a *attempt) read() (reply, error) {
	rep, err := readReply(a.br, a.cfg.MaxLineBytes, a.cfg.MaxReplyLines)
	for _, l := range rep.Lines {
		a.res.Transcript = append(a.res.Transcript, FromServer+printable(l))
	}
	return rep, err
}

// quit ends the session politely; its outcome does not change the result.
func (a *attempt) quit() {
	if _, err := a.cmd("QUIT"); err != nil {
		a.note("no answer to QUIT: " + err.Error())
	}
}

// reject records an SMTP refusal of the session; a Google MX's reply is
// explained from the codes Google documents (ExplainGmailReply).
func (a *attempt) reject(stage Stage, what string, rep reply) {
	a.res.SMTPCode, a.res.SMTPText = rep.Code, rep.Text()
	a.failClass(stage, FailSMTPRejected, fmt.Errorf("the server answered %s with %d", what, rep.Code))
	if fromGoogle(a.ep.MX, a.res.Transcript) {
		if h, ok := ExplainGmailReply(rep.Code, rep.Enhanced, a.res.SMTPText); ok {
			a.hints = append(a.hints, h)
		}
	}
}

func (a *attempt) fail(stage Stage, err error) {
	f := Classify(stage, err)
	a.failClass(stage, f, err)
	a.hints = append(a.hints, detailHints(stage, err, a.ep)...)
}

// detailHints are the hints an error says more about than its class.
func detailHints(stage Stage, err error, ep Endpoint) []string {
	var hints []string
	if stage == StageConnect && errors.Is(err, syscall.EADDRNOTAVAIL) {
		hints = append(hints, fmt.Sprintf("the source address %s is not configured on this host", ep.Source))
	}
	if stage == StageHandshake {
		if al, ok := tlsAlert(err); ok {
			var ae *alertError
			if errors.As(err, &ae) && !ae.remote {
				hints = append(hints, fmt.Sprintf("the probe ended the handshake with alert %s (%d) after the server's answer", alertName(al), al))
			} else {
				hints = append(hints, fmt.Sprintf("the server (or a middlebox) sent TLS alert %s (%d)", alertName(al), al))
			}
		}
	}
	return hints
}

func (a *attempt) failClass(stage Stage, f Failure, err error) {
	a.res.Stage, a.res.Failure = stage, f
	a.res.Error = err.Error()
	a.note(fmt.Sprintf("%s failed (%s): %s", stage, f, clip(err.Error(), 300)))
}

func (a *attempt) note(s string) {
	a.res.Transcript = append(a.res.Transcript, Note+s)
}

// ms converts d to milliseconds rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}
