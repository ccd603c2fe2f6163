package probe

import (
	"encoding/json"
	"time"
)

// Stage names the step of a probe at which it stopped. The strings are part
// of the JSON and SQLite contract.
type Stage string

// The stages of a probe, in the order they run.
const (
	StageDNS       Stage = "dns"
	StageConnect   Stage = "connect"
	StageBanner    Stage = "banner"
	StageEHLO      Stage = "ehlo"
	StageStartTLS  Stage = "starttls"
	StageHandshake Stage = "handshake"
	StageVerify    Stage = "verify"
	StagePostTLS   Stage = "post_tls"
	// StageAgent is used by relays whose remote agent could not produce a result.
	StageAgent Stage = "agent"
)

// Failure is the class of a failed probe. The strings are part of the JSON
// and SQLite contract (docs/architecture.md, "Failure classes").
type Failure string

// Failure classes. An empty Failure means the probe succeeded.
const (
	FailNone               Failure = ""
	FailDNSError           Failure = "dns_error"
	FailConnectTimeout     Failure = "connect_timeout"
	FailConnectRefused     Failure = "connect_refused"
	FailConnectUnreachable Failure = "connect_unreachable"
	FailBannerTimeout      Failure = "banner_timeout"
	FailSMTPRejected       Failure = "smtp_rejected"
	FailStartTLSNotOffered Failure = "starttls_not_offered"
	FailStartTLSMasked     Failure = "starttls_masked"
	FailStartTLSRejected   Failure = "starttls_rejected"
	FailTLSReset           Failure = "tls_reset"
	FailTLSTimeout         Failure = "tls_timeout"
	FailTLSProtocolVersion Failure = "tls_protocol_version"
	FailTLSNoSharedCipher  Failure = "tls_no_shared_cipher"
	FailTLSAlert           Failure = "tls_alert"
	FailCertUntrusted      Failure = "cert_untrusted"
	FailCertExpired        Failure = "cert_expired"
	FailCertHostname       Failure = "cert_hostname_mismatch"
	FailPostTLS            Failure = "post_tls_failed"
	FailSMTPProtocol       Failure = "smtp_protocol_error"

	// FailAgentUnreachable and FailAgentError belong to the relay, not to
	// Gmail: escalation never counts them as Gmail failures.
	FailAgentUnreachable Failure = "agent_unreachable"
	FailAgentError       Failure = "agent_error"
)

// Failures lists every failure class, in the order of the failure table in docs/architecture.md.
var Failures = []Failure{
	FailDNSError, FailConnectTimeout, FailConnectRefused, FailConnectUnreachable,
	FailBannerTimeout, FailSMTPRejected, FailStartTLSNotOffered, FailStartTLSMasked,
	FailStartTLSRejected, FailTLSReset, FailTLSTimeout, FailTLSProtocolVersion,
	FailTLSNoSharedCipher, FailTLSAlert, FailCertUntrusted, FailCertExpired,
	FailCertHostname, FailPostTLS, FailSMTPProtocol,
	FailAgentUnreachable, FailAgentError,
}

// IsRelayFailure reports whether f is a failure of the relay's agent rather
// than of the path toward the mail exchanger.
func (f Failure) IsRelayFailure() bool {
	return f == FailAgentUnreachable || f == FailAgentError
}

// Engine names the implementation that produced a result.
const (
	EngineNative        = "native"
	EngineOpenSSL       = "openssl"
	EnginePosttlsFinger = "posttls-finger"
)

// Report is the outcome of one probe run: every MX × IP × source result.
// It is the object printed by `gmailtls probe --json`.
type Report struct {
	Relay     string    `json:"relay"`
	Domain    string    `json:"domain"`
	StartedAt time.Time `json:"started_at"`
	Results   []Result  `json:"results"`
}

// OK reports whether every result in the report succeeded. A report with no
// results is not OK.
func (r Report) OK() bool {
	if len(r.Results) == 0 {
		return false
	}
	for _, res := range r.Results {
		if !res.OK {
			return false
		}
	}
	return true
}

// Result is the outcome of one probe toward one MX host address from one
// source address.
type Result struct {
	Relay      string    `json:"relay"`
	Engine     string    `json:"engine,omitempty"`
	SourceIP   string    `json:"source_ip"`
	MX         string    `json:"mx"`
	Preference uint16    `json:"preference"`
	IP         string    `json:"ip"`
	Port       int       `json:"port"`
	ServerName string    `json:"servername,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	OK         bool      `json:"ok"`
	Stage      Stage     `json:"stage,omitempty"`
	Failure    Failure   `json:"failure,omitempty"`
	// Error is the underlying error text, for people; never parse it.
	Error      string   `json:"error,omitempty"`
	SMTPCode   int      `json:"smtp_code,omitempty"`
	SMTPText   string   `json:"smtp_text,omitempty"`
	TLS        *TLSInfo `json:"tls,omitempty"`
	Timings    Timings  `json:"timings_ms"`
	Hints      []string `json:"hints"`
	Transcript []string `json:"transcript"`
}

// TLSInfo describes the negotiated TLS session (or, after a verification
// failure, what the server presented).
type TLSInfo struct {
	Version  string `json:"version"`
	Cipher   string `json:"cipher"`
	Group    string `json:"group,omitempty"`
	Verified bool   `json:"verified"`
	// Variant names the ClientHello variant that completed the handshake
	// when the default one did not ("classic_kex", "tls12_only").
	Variant          string        `json:"variant,omitempty"`
	PeerCertificates []Certificate `json:"peer_certificates"`
}

// Certificate summarises one certificate of the peer's chain.
type Certificate struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	SANs     []string  `json:"sans,omitempty"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
}

// Timings are per-stage durations in milliseconds. A stage that did not run
// is zero; in JSON it is null (see Result.StageTimings).
type Timings struct {
	DNS       float64 `json:"dns,omitempty"`
	Connect   float64 `json:"connect"`
	Banner    float64 `json:"banner"`
	EHLO      float64 `json:"ehlo"`
	StartTLS  float64 `json:"starttls"`
	Handshake float64 `json:"handshake"`
	PostTLS   float64 `json:"post_tls,omitempty"`
	Total     float64 `json:"total"`
}

// Transcript line prefixes: each transcript entry is one of these followed
// by the line's text, e.g. "S: 220 mx.google.com ESMTP" or "C: STARTTLS".
// TLS bytes are never recorded.
const (
	FromClient = "C: "
	FromServer = "S: "
	// Note marks a line the probe adds, such as "* TLS handshake started".
	Note = "* "
)

// WireResult is a Result as it is written in JSON (gmailtls probe --json,
// the agent protocol, history --json): every contract field is present even
// when empty. stage, failure, smtp_code, smtp_text and tls are null when
// there is nothing to say (a success has no failure; a probe that never
// reached TLS has no tls); hints and transcript are [] rather than null.
// A Result decodes from it directly.
type WireResult struct {
	wirePlain
	Stage      *Stage      `json:"stage"`
	Failure    *Failure    `json:"failure"`
	SMTPCode   *int        `json:"smtp_code"`
	SMTPText   *string     `json:"smtp_text"`
	TLS        *TLSInfo    `json:"tls"`
	Timings    WireTimings `json:"timings_ms"`
	Hints      []string    `json:"hints"`
	Transcript []string    `json:"transcript"`
}

// WireTimings are Timings as written in JSON: every stage key is present in
// every result, null when the stage was not reached or not measured (a
// stage after the one that failed; every stage of the openssl and
// posttls-finger engines, which time only the whole run; dns when no lookup
// was made). total is always a number.
type WireTimings struct {
	DNS       *float64 `json:"dns"`
	Connect   *float64 `json:"connect"`
	Banner    *float64 `json:"banner"`
	EHLO      *float64 `json:"ehlo"`
	StartTLS  *float64 `json:"starttls"`
	Handshake *float64 `json:"handshake"`
	PostTLS   *float64 `json:"post_tls"`
	Total     *float64 `json:"total"`
}

// stageOrder is the place of each timed stage in a session; verify is
// timed within the handshake.
var stageOrder = map[Stage]int{
	StageDNS: 0, StageConnect: 1, StageBanner: 2, StageEHLO: 3,
	StageStartTLS: 4, StageHandshake: 5, StageVerify: 5, StagePostTLS: 6,
}

// StageTimings returns r's timings with nil for every stage that was not
// reached or not measured: only the native engine times each stage, and a
// failed probe reaches the stages up to the one it failed at (an agent
// failure reaches none). Total is never nil.
func (r Result) StageTimings() WireTimings {
	t := r.Timings
	w := WireTimings{Total: &t.Total}
	if t.DNS > 0 {
		w.DNS = &t.DNS
	}
	if r.Engine != "" && r.Engine != EngineNative {
		return w
	}
	last := stageOrder[StagePostTLS]
	if !r.OK {
		o, ok := stageOrder[r.Stage]
		if !ok {
			return w // the agent's failures, or no stage at all
		}
		last = o
	}
	fields := [...]struct {
		dst **float64
		v   *float64
	}{
		{&w.Connect, &t.Connect}, {&w.Banner, &t.Banner}, {&w.EHLO, &t.EHLO},
		{&w.StartTLS, &t.StartTLS}, {&w.Handshake, &t.Handshake}, {&w.PostTLS, &t.PostTLS},
	}
	for i, f := range fields {
		if i+1 <= last { // connect is stage 1
			*f.dst = f.v
		}
	}
	return w
}

// wirePlain is Result without methods, whose omitempty fields WireResult
// shadows.
type wirePlain Result

// Wire returns r in its JSON form.
func (r Result) Wire() WireResult {
	w := WireResult{wirePlain: wirePlain(r), TLS: r.TLS, Timings: r.StageTimings(), Hints: r.Hints, Transcript: r.Transcript}
	if r.Stage != "" {
		w.Stage = &r.Stage
	}
	if r.Failure != "" {
		w.Failure = &r.Failure
	}
	if r.SMTPCode != 0 {
		w.SMTPCode = &r.SMTPCode
	}
	if r.SMTPText != "" {
		w.SMTPText = &r.SMTPText
	}
	if w.Hints == nil {
		w.Hints = []string{}
	}
	if w.Transcript == nil {
		w.Transcript = []string{}
	}
	return w
}

// MarshalJSON writes the report with every result in its wire form.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report // no methods: no recursion
	results := make([]WireResult, len(r.Results))
	for i, res := range r.Results {
		results[i] = res.Wire()
	}
	return json.Marshal(struct {
		plain
		Results []WireResult `json:"results"`
	}{plain(r), results})
}
