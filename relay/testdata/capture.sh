#!/usr/bin/env bash
# capture.sh records what the real openssl s_client and posttls-finger print
# against the scripted STARTTLS test servers (internal/smtptest), on loopback
# only, into testdata/openssl/*.txt and testdata/posttls-finger/*.txt. The
# parser tests read these fixtures. Re-run from the relay folder after a tool
# upgrade:  bash testdata/capture.sh
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
(cd ../.. && go build -o "$work/smtptestd" ./internal/smtptest/smtptestd)
mkdir -p openssl posttls-finger "$work/pf"
: > "$work/pf/main.cf" # posttls-finger insists on a main.cf
name=mx.test.example
behaviors="gmail expired_cert wrong_name_cert untrusted_ca self_signed_cert reset_after_ready
no_starttls masked starttls_454 starttls_502 tls10_only no_shared_cipher greet_421 ehlo_550
hang_banner hang_after_ready close_after_banner post_tls_421 drop_large_hello garbage"
for b in $behaviors; do
	"$work/smtptestd" -listen 127.0.0.1:0 -behavior "$b" -hostname "$name" \
		-ca-out "$work/ca-$b.pem" > "$work/out-$b" 2>/dev/null &
	pid=$!
	for _ in $(seq 50); do grep -q listening "$work/out-$b" && break; sleep 0.1; done
	addr=$(awk '/listening/ {print $2}' "$work/out-$b")
	port=${addr##*:}
	timeout 6 openssl s_client -starttls smtp -connect "$addr" -servername "$name" \
		-verify_hostname "$name" -CAfile "$work/ca-$b.pem" -verify_return_error -brief \
		< /dev/null > "openssl/$b.txt" 2>&1 || true
	if command -v posttls-finger > /dev/null; then
		MAIL_CONFIG="$work/pf" timeout 12 posttls-finger -l secure -t 4 -T 4 \
			-F "$work/ca-$b.pem" -P /etc/ssl/certs -s "$name" "[127.0.0.1]:$port" "$name" \
			> "posttls-finger/$b.txt" 2>&1 || true
		MAIL_CONFIG="$work/pf" timeout 12 posttls-finger -c -l secure -t 4 -T 4 \
			-F "$work/ca-$b.pem" -P /etc/ssl/certs -s "$name" "[127.0.0.1]:$port" "$name" \
			> "posttls-finger/$b-c.txt" 2>&1 || true
	fi
	kill "$pid"; wait "$pid" 2>/dev/null || true
done
# A closed port: connection refused.
closed=127.0.0.1:1
timeout 6 openssl s_client -starttls smtp -connect "$closed" -servername "$name" -brief \
	< /dev/null > openssl/connect_refused.txt 2>&1 || true
if command -v posttls-finger > /dev/null; then
	MAIL_CONFIG="$work/pf" timeout 12 posttls-finger -l secure -t 4 -T 4 -P /etc/ssl/certs \
		-s "$name" "[127.0.0.1]:1" "$name" > posttls-finger/connect_refused.txt 2>&1 || true
fi
openssl version > openssl/VERSION
command -v posttls-finger > /dev/null && postconf -d -h mail_version > posttls-finger/VERSION || true
echo "fixtures written under $here"
