// Package probe is gmailtls's STARTTLS probe engine. It knows nothing of
// Slack or SQL: a Config goes in, a Report with one Result per MX host ×
// address × source address comes out.
//
// One probe runs these stages, each with its own deadline and timing:
//
//  1. dns: the domain's MX set sorted by preference (or a pinned list),
//     then the A and AAAA records of every MX host;
//  2. connect: TCP to port 25, optionally bound to a source address;
//  3. banner: read the 220 greeting;
//  4. ehlo: EHLO, and check that STARTTLS is offered and not masked by an
//     SMTP-inspection firewall;
//  5. starttls: STARTTLS, expect 220;
//  6. handshake: TLS 1.2 or newer, SNI = the MX host name;
//  7. verify: the peer's chain against the system roots (plus extra roots)
//     and the MX host name, judged apart from the handshake so that the
//     presented chain is recorded even when it does not verify;
//  8. post_tls: EHLO again over TLS, then QUIT. On Linux the probe asks
//     for an immediate ACK of every segment it reads (TCP_QUICKACK, see
//     quickack_linux.go): otherwise a server's TLS 1.3 session ticket,
//     left unacknowledged by the delayed ACK, holds its EHLO answer back
//     by about 40 ms under Nagle (Postfix does this).
//
// No mail is ever sent: the probe never issues MAIL FROM. Everything read
// from the server is bounded in line length and line count, so a broken or
// hostile peer can neither hang a probe past its deadlines nor grow its
// memory. A failed probe is a Result with a Failure class and a hint for the
// first thing to check; Run returns an error only when it cannot run at all.
//
// When the handshake is reset or times out, the probe reconnects and tries
// narrower ClientHellos (classic key exchange without the post-quantum key
// share, then TLS 1.2 only) and says which one, if any, got through: a
// middlebox that drops large ClientHellos is a real cause of the mail log's
// "SSL_connect error ... lost connection".
package probe
