#!/usr/bin/env bash
# compare-openssl.sh [N]: how long one STARTTLS probe takes with gmailtls and
# with openssl s_client, against the same local test server.
#
# It builds gmailtls as it ships (the flags of docker/Dockerfile and .ci/run:
# CGO_ENABLED=0, -trimpath, -ldflags "-s -w": a static binary, no debug
# information) and smtptestd, starts smtptestd (Gmail behaviour) on
# 127.0.0.1, then runs N times each (default 50), alternating:
#
#   gmailtls probe --mx ADDR --servername mx.test.example --ca-file CA
#   openssl s_client -starttls smtp -connect ADDR -CAfile CA -verify_return_error -brief </dev/null
#
# and prints the median wall time of each in ms and their ratio. Both are
# whole processes, start-up included. The clock is bash's $EPOCHREALTIME,
# read without starting a process, so that no timer's own start-up is
# counted in either tool's time. gmailtls does more per run: EHLO again
# over TLS, QUIT, the host-name check and the classification. Only loopback
# is touched; the server and the temporary files are removed on exit.
set -euo pipefail

n=${1:-50}
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [N]   (N runs of each tool, default 50)" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "$0: openssl is not installed (apt-get install openssl)" >&2; exit 2; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "$0: needs bash 5 or later (EPOCHREALTIME)" >&2; exit 2; }
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir "$work/bin" "$work/times"
: >"$work/times/gmailtls"; : >"$work/times/openssl"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/gmailtls" ./cmd/gmailtls
go build -o "$work/bin/smtptestd" ./internal/smtptest/smtptestd

"$work/bin/smtptestd" -listen 127.0.0.1:0 -behavior gmail -hostname mx.test.example \
  -ca-out "$work/ca.pem" >"$work/smtptestd.out" 2>"$work/smtptestd.err" &
pid=$!
addr=""
for _ in $(seq 200); do
  addr=$(awk '$1 == "listening" { print $2 }' "$work/smtptestd.out")
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/smtptestd.err" >&2; exit 1; }
  sleep 0.05
done
[ -n "$addr" ] || { echo "$0: smtptestd did not start" >&2; exit 1; }

# run_timed NAME CMD...: runs CMD once, checks that it succeeds and
# appends its wall time in ns to $work/times/NAME. The two readings of
# $EPOCHREALTIME (µs, the decimal point dropped) start no process.
run_timed() {
  local name=$1; shift
  local t0 t1
  t0=${EPOCHREALTIME/[.,]/}
  if ! "$@" >"$work/last.out" 2>&1 </dev/null; then
    echo "$0: $name failed:" >&2; cat "$work/last.out" >&2; exit 1
  fi
  t1=${EPOCHREALTIME/[.,]/}
  echo $(((t1 - t0) * 1000)) >>"$work/times/$name"
}

median_ms() {
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f", m / 1e6 }'
}

gmailtls_probe=("$work/bin/gmailtls" probe --mx "$addr" --servername mx.test.example --ca-file "$work/ca.pem")
openssl_probe=(openssl s_client -starttls smtp -connect "$addr" -CAfile "$work/ca.pem" -verify_return_error -brief)

# One warm-up run of each, so that neither pays for a cold page cache;
# then the two alternate, so that a change in the machine's load hits both.
run_timed warmup "${gmailtls_probe[@]}"
run_timed warmup "${openssl_probe[@]}"
for _ in $(seq "$n"); do
  run_timed gmailtls "${gmailtls_probe[@]}"
  run_timed openssl "${openssl_probe[@]}"
done

g=$(median_ms "$work/times/gmailtls")
o=$(median_ms "$work/times/openssl")
echo "server:   smtptestd (gmail behaviour) on $addr, $(openssl version)"
echo "build:    gmailtls as shipped (CGO_ENABLED=0 -trimpath -ldflags \"-s -w\"), $(go version | awk '{print $3}')"
echo "gmailtls: median $g ms per probe over $n runs (connect, EHLO, STARTTLS, TLS, verify, EHLO, QUIT)"
echo "openssl:  median $o ms per probe over $n runs (s_client -starttls smtp -brief)"
awk -v g="$g" -v o="$o" 'BEGIN { printf "ratio:    gmailtls/openssl = %.2f\n", g / o }'
