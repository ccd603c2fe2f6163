#!/usr/bin/env bash
# compare-openssl.sh [--server smtptestd|postfix] [N]: how long one STARTTLS
# probe takes with gmailtls and with openssl s_client, against the same local
# test server.
#
# Servers (both on 127.0.0.1, certificate for mx.test.example from a lab CA):
#   smtptestd  the scripted server of internal/smtptest, gmail behaviour
#              (default; the one the probe's tests use)
#   postfix    a real Postfix: Debian's postfix run by internal/postfixlab
#              (postfixlabd -kinds ok); needs root and the postfix package
#
# It builds gmailtls as it ships (the flags of docker/Dockerfile and .ci/run:
# CGO_ENABLED=0, -trimpath, -ldflags "-s -w": a static binary, no debug
# information) and the server, then runs N times each (default 50),
# alternating, the same dialogue (greeting, EHLO, STARTTLS, TLS 1.3 with the
# chain and the name verified, EHLO again, QUIT):
#
#   gmailtls probe --mx ADDR --servername mx.test.example --ca-file CA
#   printf 'EHLO probe.test.example\r\nQUIT\r\n' |
#     openssl s_client -starttls smtp -connect ADDR -CAfile CA -verify_return_error \
#       -verify_hostname mx.test.example -brief -ign_eof
#
# and prints the median wall time of each in ms and their ratio. Both are
# whole processes, start-up included. The clock is bash's $EPOCHREALTIME,
# read without starting a process, so that no timer's own start-up is
# counted in either tool's time. openssl writes EHLO and QUIT at once over
# TLS (Postfix logs "improper command pipelining"); gmailtls waits for the
# EHLO answer, one loopback round trip more, and also classifies the result.
# Only loopback is touched; the server and the temporary files are removed
# on exit.
#
# Environment:
#   COMPARE_REV   build gmailtls from this git revision (git archive) instead
#                 of the work tree; the server is always the work tree's
set -euo pipefail

server=smtptestd
n=50
while [ $# -gt 0 ]; do
  case $1 in
    --server) server=${2:-}; shift 2 || { echo "$0: --server needs a value" >&2; exit 2; } ;;
    --server=*) server=${1#--server=}; shift ;;
    *) n=$1; shift ;;
  esac
done
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || { [ "$server" != smtptestd ] && [ "$server" != postfix ]; }; then
  echo "usage: $0 [--server smtptestd|postfix] [N]   (N runs of each tool, default 50)" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "$0: openssl is not installed (apt-get install openssl)" >&2; exit 2; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "$0: needs bash 5 or later (EPOCHREALTIME)" >&2; exit 2; }
if [ "$server" = postfix ] && [ "$(id -u)" != 0 ]; then
  echo "$0: --server postfix needs root (Postfix's master runs as root)" >&2; exit 2
fi
cd "$(dirname "$0")/.."
rev=${COMPARE_REV:-}

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir "$work/bin" "$work/times"
: >"$work/times/gmailtls"; : >"$work/times/openssl"
if [ -n "$rev" ]; then
  mkdir "$work/src"
  git archive "$rev" | tar -x -C "$work/src"
  (cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/gmailtls" ./cmd/gmailtls)
  built="$(git rev-parse --short "$rev")"
else
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/gmailtls" ./cmd/gmailtls
  if head=$(git rev-parse --short HEAD 2>/dev/null); then
    built="work tree at $head$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (modified)')"
  else
    built="source tree $(pwd) (not a git work tree)"
  fi
fi

: >"$work/server.out"
if [ "$server" = postfix ]; then
  go build -o "$work/bin/postfixlabd" ./internal/postfixlab/postfixlabd
  "$work/bin/postfixlabd" -kinds ok -ipv6=false -relay=false -hostname mx.test.example \
    >"$work/server.out" 2>"$work/server.err" &
  ready='$1 == "ready" { print "ready" }'
  listen='$1 == "listening" { print $3 }'
else
  go build -o "$work/bin/smtptestd" ./internal/smtptest/smtptestd
  "$work/bin/smtptestd" -listen 127.0.0.1:0 -behavior gmail -hostname mx.test.example \
    -ca-out "$work/ca.pem" >"$work/server.out" 2>"$work/server.err" &
  ready='$1 == "listening" { print "ready" }'
  listen='$1 == "listening" { print $2 }'
fi
pid=$!
for _ in $(seq 200); do
  [ -n "$(awk "$ready" "$work/server.out")" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
  sleep 0.05
done
[ -n "$(awk "$ready" "$work/server.out")" ] || { echo "$0: $server did not start" >&2; cat "$work/server.err" >&2; exit 1; }
addr=$(awk "$listen" "$work/server.out")
ca="$work/ca.pem"
if [ "$server" = postfix ]; then
  ca=$(awk '$1 == "ca" { print $2 }' "$work/server.out")
  server_desc="Postfix $(postconf -d -h mail_version) (internal/postfixlab, ok listener)"
else
  server_desc="smtptestd (gmail behaviour)"
fi

# run_timed NAME CMD...: runs CMD once with $work/stdin as its input, checks
# that it succeeds and appends its wall time in ns to $work/times/NAME. The
# two readings of $EPOCHREALTIME (µs, the decimal point dropped) start no
# process.
printf 'EHLO probe.test.example\r\nQUIT\r\n' >"$work/stdin"
run_timed() {
  local name=$1; shift
  local t0 t1
  t0=${EPOCHREALTIME/[.,]/}
  if ! "$@" >"$work/last.out" 2>&1 <"$work/stdin"; then
    echo "$0: $name failed:" >&2; cat "$work/last.out" >&2; exit 1
  fi
  t1=${EPOCHREALTIME/[.,]/}
  echo $(((t1 - t0) * 1000)) >>"$work/times/$name"
}

# check_openssl: the last openssl run did the whole dialogue over TLS 1.3.
check_openssl() {
  grep -q '^Protocol version: TLSv1.3' "$work/last.out" && grep -q '^Verification: OK' "$work/last.out" &&
    grep -q '^221 ' "$work/last.out" ||
    { echo "$0: openssl did not finish the dialogue over TLS 1.3:" >&2; cat "$work/last.out" >&2; exit 1; }
}

median_ms() {
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f", m / 1e6 }'
}

gmailtls_probe=("$work/bin/gmailtls" probe --mx "$addr" --servername mx.test.example --ca-file "$ca")
openssl_probe=(openssl s_client -starttls smtp -connect "$addr" -CAfile "$ca" -verify_return_error
  -verify_hostname mx.test.example -brief -ign_eof)

# One warm-up run of each, so that neither pays for a cold page cache;
# then the two alternate, so that a change in the machine's load hits both.
run_timed warmup "${gmailtls_probe[@]}"
run_timed warmup "${openssl_probe[@]}"
check_openssl
for _ in $(seq "$n"); do
  run_timed gmailtls "${gmailtls_probe[@]}"
  run_timed openssl "${openssl_probe[@]}"
  check_openssl
done

g=$(median_ms "$work/times/gmailtls")
o=$(median_ms "$work/times/openssl")
echo "server:   $server_desc on $addr, $(openssl version)"
echo "build:    gmailtls as shipped (CGO_ENABLED=0 -trimpath -ldflags \"-s -w\"), built from the $built, $(go version | awk '{print $3}')"
echo "gmailtls: median $g ms per probe over $n runs (connect, EHLO, STARTTLS, TLS 1.3, verify, EHLO, QUIT)"
echo "openssl:  median $o ms per probe over $n runs (s_client -starttls smtp -brief, EHLO and QUIT over TLS)"
awk -v g="$g" -v o="$o" 'BEGIN { printf "ratio:    gmailtls/openssl = %.2f\n", g / o }'
