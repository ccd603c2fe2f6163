#!/usr/bin/env bash
# compare-tools.sh: runs gmailtls and the usual STARTTLS tools against the
# same scripted failures and keeps what each one says.
#
# It builds gmailtls and smtptestd into a temporary directory, starts one
# smtptestd per behaviour on 127.0.0.1, and runs against each of them:
#
#   gmailtls probe --mx ADDR --servername mx.test.example --ca-file CA (text and --json)
#   openssl s_client -starttls smtp -connect ADDR -servername ... -verify_hostname ... -CAfile CA -verify_return_error
#   posttls-finger -l secure -F CA -s mx.test.example [127.0.0.1]:PORT mx.test.example
#   swaks --server 127.0.0.1 --port PORT --tls --tls-verify --tls-ca-path CA --quit-after TLS
#   prometheus-blackbox-exporter, tcp prober with an SMTP STARTTLS query_response
#   module, asked through http://127.0.0.1:9115/probe?...&debug=true
#
# Every tool gets a 5 s protocol timeout where it has one, and every run is
# killed after 15 s. The raw output of each run (stdout and stderr, with its
# command line, exit status and wall time) goes to OUT/<behaviour>/<tool>.txt,
# and a Markdown table of the outcomes to OUT/table.md and standard output.
# A tool that is not installed is skipped and the table says so.
#
# Then, for what the one-shot tools have no counterpart for, the same
# drop_large_hello failure three times through `gmailtls console` (history
# and escalation in SQLite, no Slack needed) and `gmailtls history`, and, if
# the revision has it, bench/compare-openssl.sh 50 (per-probe wall time).
# A whole run takes about two and a half minutes, most of it in the hang_*
# behaviours' timeouts.
#
# Usage: bench/compare-tools.sh            (Debian: apt-get install openssl
#        COMPARE_REV=HEAD bench/compare-tools.sh   postfix swaks jq curl
#                                                  prometheus-blackbox-exporter)
# Environment:
#   COMPARE_OUT     output directory (default docs/comparison)
#   COMPARE_REV     build this git revision (git archive) instead of the work tree
#   BLACKBOX_ADDR   loopback address for blackbox_exporter (default 127.0.0.1:9115)
#   STAGE_TIMEOUT   protocol timeout of each tool in seconds (default 5)
#   TOOL_TIMEOUT    wall-clock limit of each run in seconds (default 15; gmailtls
#                   gets 4x, since it retries a timed-out handshake with
#                   narrower ClientHellos)
#
# Only loopback is touched. Every server started here is stopped, and the
# temporary directory removed, on exit. Needs go, jq and curl (curl only for
# blackbox_exporter).
set -uo pipefail

cd "$(dirname "$0")/.."
out=${COMPARE_OUT:-docs/comparison}
rev=${COMPARE_REV:-}
bb_addr=${BLACKBOX_ADDR:-127.0.0.1:9115}
stage_timeout=${STAGE_TIMEOUT:-5}
tool_timeout=${TOOL_TIMEOUT:-15}
servername=mx.test.example

behaviours=(
  gmail
  reset_after_ready
  drop_large_hello
  masked
  no_starttls
  starttls_454
  expired_cert
  wrong_name_cert
  untrusted_ca
  tls10_only
  hang_after_ready
  hang_banner
  endless_line
)

die() { echo "$0: $*" >&2; exit 2; }
command -v go >/dev/null || die "go is not installed"
command -v jq >/dev/null || die "jq is not installed (apt-get install jq)"
case $bb_addr in
  127.*:*|localhost:*|\[::1\]:*) ;;
  *) die "BLACKBOX_ADDR must be a loopback address, not $bb_addr" ;;
esac

work=$(mktemp -d)
pids=()
spid=""
cleanup() {
  local p
  for p in $spid ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in $spid ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ---------------------------------------------------------------
find_tool() { # find_tool NAME...: first one on PATH or in /usr/sbin
  local n
  for n in "$@"; do
    if command -v "$n" >/dev/null 2>&1; then command -v "$n"; return 0; fi
    if [ -x "/usr/sbin/$n" ]; then echo "/usr/sbin/$n"; return 0; fi
  done
  return 1
}
openssl_bin=$(find_tool openssl) || openssl_bin=""
ptf_bin=$(find_tool posttls-finger) || ptf_bin=""
swaks_bin=$(find_tool swaks) || swaks_bin=""
bb_bin=$(find_tool prometheus-blackbox-exporter blackbox_exporter) || bb_bin=""
if [ -n "$bb_bin" ] && ! command -v curl >/dev/null; then
  echo "blackbox_exporter: skipped, curl is not installed" >&2; bb_bin=""
fi
[ -n "$openssl_bin" ] || echo "openssl: not installed, skipped (apt-get install openssl)" >&2
[ -n "$ptf_bin" ] || echo "posttls-finger: not installed, skipped (apt-get install postfix)" >&2
[ -n "$swaks_bin" ] || echo "swaks: not installed, skipped (apt-get install swaks)" >&2
[ -n "$bb_bin" ] || echo "blackbox_exporter: not installed, skipped (apt-get install prometheus-blackbox-exporter)" >&2

# --- build ---------------------------------------------------------------
mkdir -p "$work/bin" "$work/raw" "$work/postfix"
src=.
if [ -n "$rev" ]; then
  mkdir "$work/src"
  git archive "$rev" | tar -x -C "$work/src" || die "git archive $rev failed"
  src=$work/src
fi
(cd "$src" && go build -o "$work/bin/gmailtls" ./cmd/gmailtls &&
  go build -o "$work/bin/smtptestd" ./internal/smtptest/smtptestd) || die "build failed"
built_from=$(if [ -n "$rev" ]; then git rev-parse --short "$rev"; else
  echo "work tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (modified)')"; fi)

# --- servers -------------------------------------------------------------
# One smtptestd at a time: start_server BEHAVIOUR sets $spid and $a.
start_server() {
  local b=$1
  rm -f "$work/ca-$b.pem"
  "$work/bin/smtptestd" -listen 127.0.0.1:0 -behavior "$b" -hostname "$servername" \
    -ca-out "$work/ca-$b.pem" >"$work/smtptestd-$b.out" 2>"$work/smtptestd-$b.err" &
  spid=$!
  a=""
  for _ in $(seq 200); do
    a=$(awk '$1 == "listening" { print $2 }' "$work/smtptestd-$b.out" 2>/dev/null)
    [ -n "$a" ] && return 0
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$work/smtptestd-$b.err" >&2
  die "smtptestd -behavior $b did not start"
}
stop_server() {
  if [ -n "$spid" ]; then kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; spid=""; fi
}

# posttls-finger reads main.cf from MAIL_CONFIG; a private one keeps it off
# the machine's Postfix configuration (and works where there is none).
cat >"$work/postfix/main.cf" <<EOF
compatibility_level = 3.6
myhostname = probe.test.example
smtp_host_lookup = native
smtp_starttls_timeout = ${stage_timeout}s
EOF
# Postfix waits until a just-written main.cf is a second old; backdate it so
# that the first run is not 1.5 s slower than the others.
touch -d "@$(($(date +%s) - 60))" "$work/postfix/main.cf"

# blackbox_exporter: one module per behaviour, since each smtptestd has its
# own CA. The module is the usual SMTP STARTTLS recipe for the tcp prober.
if [ -n "$bb_bin" ]; then
  {
    echo "modules:"
    for b in "${behaviours[@]}"; do
      cat <<EOF
  smtp_starttls_$b:
    prober: tcp
    timeout: ${stage_timeout}s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^220"
        - send: "EHLO prober.test.example"
        - expect: "^250[- ]STARTTLS"
        - send: "STARTTLS"
        - expect: "^220"
        - starttls: true
        - send: "QUIT"
      tls_config:
        ca_file: $work/ca-$b.pem
        server_name: $servername
EOF
    done
  } >"$work/blackbox.yml"
  if curl -s -o /dev/null --max-time 2 "http://$bb_addr/"; then
    die "something already listens on $bb_addr; set BLACKBOX_ADDR to a free loopback address"
  fi
  "$bb_bin" --config.file="$work/blackbox.yml" --web.listen-address="$bb_addr" \
    >"$work/blackbox.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://$bb_addr/" && break
    sleep 0.1
  done
  curl -s -o /dev/null --max-time 1 "http://$bb_addr/" ||
    { cat "$work/blackbox.log" >&2; die "blackbox_exporter did not start on $bb_addr"; }
fi

# --- runs ----------------------------------------------------------------
rm -rf "$out"
mkdir -p "$out"

# keep FILE: copies a raw output into place, cut to 24 KiB (endless_line
# makes some tools print tens of MiB), with $work shown as $WORK.
keep() {
  local from=$1 to=$2 size
  size=$(wc -c <"$from")
  if [ "$size" -gt 24576 ]; then
    head -c 16384 "$from"
    printf '\n[... %d bytes cut by compare-tools.sh ...]\n' $((size - 20480))
    tail -c 4096 "$from"
  else
    cat "$from"
  fi | sed "s#$work#\$WORK#g" >>"$to"
}

# run BEHAVIOUR TOOL LIMIT CMD...: runs CMD with stdin from $run_stdin (default
# /dev/null) and a wall-clock
# limit, keeps its output in $out/BEHAVIOUR/TOOL.txt and its exit status and
# wall time in $work/raw.
run() {
  local b=$1 tool=$2 limit=$3; shift 3
  local f=$out/$b/$tool.txt raw=$work/raw/$b.$tool t0 t1 rc ms
  mkdir -p "$out/$b"
  t0=$(date +%s%N)
  timeout -k 2 "$limit" "$@" >"$raw" 2>&1 <"${run_stdin:-/dev/null}"
  rc=$?
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  echo "$rc" >"$raw.rc"; echo "$ms" >"$raw.ms"
  {
    printf '$'; printf ' %q' "$@"
    if [ -n "${run_stdin:-}" ]; then printf ' <%s\n' "$run_stdin"; sed 's/^/# /' "$run_stdin"; else echo; fi
  } | sed "s#$work#\$WORK#g" >"$f"
  keep "$raw" "$f"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    printf '[killed by timeout after %s s; wall %d ms]\n' "$limit" "$ms" >>"$f"
  else
    printf '[exit status %d; wall %d ms]\n' "$rc" "$ms" >>"$f"
  fi
}

alpn_pad=$(for i in $(seq 1 60); do printf 'proto-%02d-padding,' "$i"; done)
alpn_pad=${alpn_pad%,}

# run_behaviour B: every tool against a fresh smtptestd -behavior B.
run_behaviour() {
  local b=$1 host port ca g
  start_server "$b"
  host=${a%:*}; port=${a##*:}; ca=$work/ca-$b.pem
  echo "== $b on $a" >&2
  rm -rf "${out:?}/$b"
  g=("$work/bin/gmailtls" probe --mx "$a" --servername "$servername" --ca-file "$ca" --timeout "${stage_timeout}s")
  run "$b" gmailtls $((tool_timeout * 4)) "${g[@]}"
  run "$b" gmailtls-json $((tool_timeout * 4)) "${g[@]}" --json
  mv "$out/$b/gmailtls-json.txt" "$out/$b/gmailtls.json.txt"
  if [ -n "$openssl_bin" ]; then
    run "$b" openssl "$tool_timeout" "$openssl_bin" s_client -starttls smtp -connect "$a" \
      -servername "$servername" -verify_hostname "$servername" -CAfile "$ca" -verify_return_error
    case $b in
      wrong_name_cert)
        # what the common invocation (no -verify_hostname) says
        run "$b" openssl-no-verify-hostname "$tool_timeout" "$openssl_bin" s_client -starttls smtp \
          -connect "$a" -CAfile "$ca" -verify_return_error -brief ;;
      drop_large_hello)
        # OpenSSL 3.0 sends no post-quantum key share, so its ClientHello is
        # small (316 bytes) and passes; padding it with a long ALPN list to
        # 1318 bytes, about the size of a post-quantum one, shows what it
        # says when a middlebox drops it.
        run "$b" openssl-large-hello "$tool_timeout" "$openssl_bin" s_client -starttls smtp \
          -connect "$a" -servername "$servername" -CAfile "$ca" -verify_return_error -brief \
          -alpn "$alpn_pad" ;;
    esac
  fi
  if [ -n "$ptf_bin" ]; then
    run "$b" posttls-finger "$tool_timeout" env MAIL_CONFIG="$work/postfix" "$ptf_bin" \
      -t "$stage_timeout" -T "$stage_timeout" -l secure -F "$ca" -s "$servername" \
      "[$host]:$port" "$servername"
  fi
  if [ -n "$swaks_bin" ]; then
    run "$b" swaks "$tool_timeout" "$swaks_bin" --server "$host" --port "$port" \
      --helo probe.test.example --from probe@test.example --to postmaster@test.example \
      --tls --tls-verify --tls-ca-path "$ca" --tls-sni "$servername" \
      --quit-after TLS --timeout "${stage_timeout}s"
  fi
  if [ -n "$bb_bin" ]; then
    run "$b" blackbox "$tool_timeout" curl -s --max-time "$tool_timeout" \
      "http://$bb_addr/probe?module=smtp_starttls_$b&target=$a&debug=true"
    # the module configuration it echoes is in blackbox.yml
    sed -i '/^Module configuration:/,/^\[exit status/{/^\[exit status/!d}' "$out/$b/blackbox.txt"
  fi
  # A server that died under the runs (or was killed from outside) makes
  # the later runs meaningless: say so, so that the caller runs B again.
  if ! kill -0 "$spid" 2>/dev/null; then
    spid=""
    echo "$0: smtptestd -behavior $b was gone by the end of its runs" >&2
    return 1
  fi
  stop_server
}

for b in "${behaviours[@]}"; do
  run_behaviour "$b" || run_behaviour "$b" || die "smtptestd -behavior $b died twice; see above"
done

# What the one-shot tools have no counterpart for: the same failure three
# times through the bot's command handlers (the console, no Slack needed),
# kept in SQLite, escalated, and read back with status and history.
session() {
  local b=drop_large_hello
  start_server "$b"
  echo "== console session against $b on $a" >&2
  cat >"$work/lab.toml" <<EOF
[target]
mx = ["$a"]
servername = "$servername"
ca_file = "$work/ca-$b.pem"
timeout = "${stage_timeout}s"
[storage]
path = "$work/lab.db"
[[relay]]
name = "relay-1"
kind = "local"
EOF
  printf 'check relay-1\ncheck relay-1\ncheck relay-1\nstatus\n' >"$work/console.in"
  run_stdin=$work/console.in run "$b" gmailtls-console $((tool_timeout * 4)) \
    "$work/bin/gmailtls" console --config "$work/lab.toml"
  run "$b" gmailtls-history "$tool_timeout" "$work/bin/gmailtls" history --config "$work/lab.toml"
  stop_server
  sed "s#$work#\$WORK#g" "$work/lab.toml" >"$out/$b/gmailtls-lab.toml"
}
session

# The per-probe timing of gmailtls against openssl s_client, when the
# revision has bench/compare-openssl.sh (it builds and runs its own server).
if [ -n "$openssl_bin" ] && [ -f "$src/bench/compare-openssl.sh" ]; then
  echo "== bench/compare-openssl.sh 50" >&2
  run timing compare-openssl 300 bash "$src/bench/compare-openssl.sh" 50
  mv "$out/timing/compare-openssl.txt" "$out/compare-openssl.txt"
  # And against a real Postfix (internal/postfixlab), where the revision can
  # and this machine has Postfix and root.
  if grep -q -- '--server postfix' "$src/bench/compare-openssl.sh" && [ "$(id -u)" = 0 ] &&
    [ -x /usr/lib/postfix/sbin/master ]; then
    echo "== bench/compare-openssl.sh --server postfix 50" >&2
    run timing compare-openssl-postfix 300 bash "$src/bench/compare-openssl.sh" --server postfix 50
    mv "$out/timing/compare-openssl-postfix.txt" "$out/compare-openssl-postfix.txt"
  fi
  rmdir "$out/timing"
fi
if [ -n "$bb_bin" ]; then sed "s#$work#\$WORK#g" "$work/blackbox.yml" >"$out/blackbox.yml"; fi
if [ -n "$ptf_bin" ]; then cp "$work/postfix/main.cf" "$out/posttls-finger-main.cf"; fi

# --- table ---------------------------------------------------------------
rc_of() { cat "$work/raw/$1.$2.rc" 2>/dev/null; }
ms_of() { cat "$work/raw/$1.$2.ms" 2>/dev/null; }
# status B TOOL LIMIT: "exit N, T ms" or "killed at LIMIT s"
status() {
  local rc
  rc=$(rc_of "$1" "$2")
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "killed at $3 s"
  else echo "exit $rc, $(ms_of "$1" "$2") ms"; fi
}
# pick FILE N ERE [SED]: the first N lines of a raw output that match ERE,
# shortened by SED, joined by " / ", cut to 90 characters, as a code span.
pick() {
  local s
  s=$(grep -a -E "$3" "$work/raw/$1" 2>/dev/null | head -n "$2" | sed -E "${4:-s/^//}" |
    sed -E 's/ (to|for) 127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+//; s/[[:space:]]+$//' |
    awk 'NR > 1 { printf " / " } { printf "%s", $0 }' | cut -c1-90)
  [ -n "$s" ] && printf '`%s`' "${s//|/\\|}"
}

summ_gmailtls() {
  local b=$1 s
  s=$(jq -r '.results[0] |
      if .ok then "ok, \(.tls.version // "")"
      else "**\(.stage)/\(.failure)**" +
        (if (.tls.variant // "") != "" and .tls.variant != "default"
         then ", works with `\(.tls.variant)`" else "" end)
      end' "$work/raw/$b.gmailtls-json" 2>/dev/null)
  echo "${s:-no JSON} ($(status "$b" gmailtls-json $((tool_timeout * 4))))"
}
summ_openssl() {
  local b=$1 s
  # OpenSSL's error lines: keep the reason ("40..:error:0A00010B:SSL
  # routines:ssl3_get_record:wrong version number:file:line:" -> "wrong
  # version number").
  s=$(pick "$b.openssl" 2 "errno=|:error:|^verify error:|Didn't find STARTTLS" \
    's/^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]*):.*/error: \1/')
  [ -z "$s" ] && s=$(pick "$b.openssl" 1 "^Verify return code")
  echo "${s:-no output} ($(status "$b" openssl "$tool_timeout"))"
}
summ_ptf() {
  local b=$1 s
  s=$(pick "$b.posttls-finger" 2 "TLS connection established|SSL_connect error|STARTTLS rejected|verification failed|timeout|Failed to establish|warning:|fatal:|lost connection" \
    's/^posttls-finger: //; s/ with cipher .*//; s/^warning: TLS library problem: error:[0-9A-F]+:[^:]*::([^:]*):.*/\1/')
  [ -z "$s" ] && s="no TLS line, it ends: $(tail -n2 "$work/raw/$b.posttls-finger" >"$work/raw/$b.ptf-tail"
    pick "$b.ptf-tail" 2 . 's/^posttls-finger: //')"
  echo "$s ($(status "$b" posttls-finger "$tool_timeout"))"
}
summ_swaks() {
  local b=$1 s
  s=$(pick "$b.swaks" 1 '^(<\*\*|\*\*\*)')
  [ -z "$s" ] && s=$(pick "$b.swaks" 1 "^=== TLS started" 's/ with cipher .*//')
  [ -z "$s" ] && s="no error line, it ends: $(tail -n2 "$work/raw/$b.swaks" >"$work/raw/$b.swaks-tail"
    pick "$b.swaks-tail" 2 .)"
  echo "$s ($(status "$b" swaks "$tool_timeout"))"
}
summ_bb() {
  local b=$1 r=$work/raw/$1.blackbox ok re msg
  ok=$(awk '$1 == "probe_success" { print $2 }' "$r")
  re=$(awk '$1 == "probe_failed_due_to_regex" { print $2 }' "$r")
  msg=$(grep -a -m1 'level=error' "$r" | sed -E 's/.* msg="?([^"]*)"?( err=.*|$)/\1/; s/ msg=.*//')
  echo "probe_success ${ok:-?}, failed_due_to_regex ${re:-?}${msg:+, log: \`$msg\`} ($(ms_of "$b" blackbox) ms)"
}

{
  echo "Built from $built_from; $(date -u +%Y-%m-%dT%H:%MZ); protocol timeouts ${stage_timeout} s, runs killed after ${tool_timeout} s (gmailtls $((tool_timeout * 4)) s)."
  echo "Versions: $("$work/bin/gmailtls" version 2>/dev/null | head -n1)${openssl_bin:+; $("$openssl_bin" version)}${ptf_bin:+; Postfix $(MAIL_CONFIG=$work/postfix postconf -h mail_version 2>/dev/null)}${swaks_bin:+; swaks $("$swaks_bin" --version 2>/dev/null | awk 'NR==1 { print $3 }')}${bb_bin:+; $("$bb_bin" --version 2>&1 | head -n1 | awk '{ sub(",", "", $1); print $1, $3 }')}."
  echo
  echo "| behaviour | gmailtls stage/class | openssl s_client | posttls-finger | swaks | blackbox_exporter |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for b in "${behaviours[@]}"; do
    printf '| `%s` | %s | %s | %s | %s | %s |\n' "$b" "$(summ_gmailtls "$b")" \
      "$(if [ -n "$openssl_bin" ]; then summ_openssl "$b"; else echo "not installed"; fi)" \
      "$(if [ -n "$ptf_bin" ]; then summ_ptf "$b"; else echo "not installed"; fi)" \
      "$(if [ -n "$swaks_bin" ]; then summ_swaks "$b"; else echo "not installed"; fi)" \
      "$(if [ -n "$bb_bin" ]; then summ_bb "$b"; else echo "not installed"; fi)"
  done
} >"$out/table.md"
cat "$out/table.md"
