// Package mtasts checks a domain's MTA-STS policy (RFC 8461) the way a
// sending MTA applies it, and tells an MTA-STS failure apart from a TLS
// failure. gmail.com publishes one in mode enforce; a relay that honours it
// refuses to deliver to an MX host that is not in the policy or whose
// certificate is not valid for the MX host name.
//
// Discovery (Client.Fetch), in RFC order, each step's failure a Class:
//
//  1. TXT "_mta-sts.<domain>": records that do not start with v=STSv1 are
//     discarded; none is no_policy, a lookup error record_lookup_failed,
//     more than one or one that does not parse record_invalid;
//  2. GET https://mta-sts.<domain>/.well-known/mta-sts.txt, the certificate
//     verified for mta-sts.<domain>, no redirect followed, status 200,
//     media type text/plain, at most 64 KiB, within a timeout; any failure
//     is policy_fetch_failed with a Reason;
//  3. the policy (version, mode, mx patterns, max_age) parsed strictly
//     where RFC 8461's grammar is strict and tolerantly where it asks for
//     tolerance (CRLF or LF, unknown keys ignored); a failure is
//     policy_invalid.
//
// Judgement (Judge, pure): every MX host is matched against the "mx"
// patterns ("*." matches exactly one left-most label); an unmatched host
// in mode enforce or testing makes the class mx_not_in_policy. Each MX
// host's certificate is judged from probe results (the verified flag and
// the leaf's SANs in probe.TLSInfo): valid, invalid, no_tls or unknown.
// That verdict is TLS's, not MTA-STS's, and Report keeps them apart.
//
// Everything that reaches outside is injected: the TXT Resolver
// (*net.Resolver satisfies it), the HTTPS DialContext, the root CAs and
// the clock, so tests run against a loopback HTTPS server with a test CA.
// The package imports nothing of the project but probe's result types.
//
// # Integration (in part)
//
// Done: monitor.MTASTS fetches the policy for local relays (cached per
// domain for max_age, fetched again when the id changes), an agent fetches
// it itself (relay, GET /v1/mtasts), and the evidence verb shows the
// Report of the latest failing run. The rest of the
// intended wiring, for whoever takes it on (see docs/architecture.md for
// the layers):
//
//   - relay: the agent runs Client.Fetch with its own dialer (bound to its
//     source address, like its probes) and returns the Discovery as JSON
//     in a new signed endpoint or beside the probe answer; "From an agent,
//     the relay fetches it": the policy a relay sees is what matters, as
//     a relay may sit behind a proxy or DNS that a central bot does not.
//     relay.Local calls Fetch in process.
//   - monitor: CheckRelay fetches (or gets from the agent) a Discovery at
//     most every max_age, or when the record's id changes, and calls
//     Judge(discovery, nil, results) on the probe results of the run;
//     the Report is stored with the run (a migration in storage) so that
//     history can say when the policy changed.
//   - commands: the evidence verb shows Report.Summary and the JSON; a
//     check result flags Report.Refused hosts, and presents an MTA-STS
//     class (the policy, the MX list) and a certificate verdict (TLS)
//     with different advice.
//   - escalation: an MTA-STS class is not a probe failure and is not
//     counted as one; only Refused hosts matter to delivery.
package mtasts
