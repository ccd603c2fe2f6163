package message

import (
	"strconv"
	"strings"

	"github.com/gmailtls/gmailtls/probe"
)

// Mark is ✓ or ✗.
func Mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// Ms writes milliseconds for people: "48 ms", "20012 ms".
func Ms(ms float64) string {
	if ms <= 0 {
		return "0 ms"
	}
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
}

// Addr writes an MX address, with the port when it is not 25.
func Addr(r probe.Result) string {
	ip := r.IP
	if ip == "" {
		return "-"
	}
	if r.Port != 0 && r.Port != 25 {
		if strings.Contains(ip, ":") {
			return "[" + ip + "]:" + strconv.Itoa(r.Port)
		}
		return ip + ":" + strconv.Itoa(r.Port)
	}
	return ip
}

// ResultRow is one result on one line: mark, MX, address, source (when
// showSource), then what passed (TLS version, cipher) or what failed (stage,
// failure class, SMTP code), and the time taken.
func ResultRow(r probe.Result, showSource bool) string {
	var b strings.Builder
	b.WriteString(Mark(r.OK))
	b.WriteByte(' ')
	if r.Engine != "" && r.Engine != probe.EngineNative {
		b.WriteString("[" + r.Engine + "] ")
	}
	mx := r.MX
	if mx == "" {
		mx = "(no MX)"
	}
	b.WriteString(mx)
	if a := Addr(r); a != mx {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	if showSource && r.SourceIP != "" {
		b.WriteString(" from " + r.SourceIP)
	}
	if r.OK {
		if r.TLS != nil {
			b.WriteString(" · " + r.TLS.Version + " · " + r.TLS.Cipher)
		}
	} else {
		stage := string(r.Stage)
		if stage == "" {
			stage = "?"
		}
		b.WriteString(" · " + stage + " · " + string(r.Failure))
		if r.SMTPCode != 0 {
			b.WriteString(" " + strconv.Itoa(r.SMTPCode))
		}
		if r.TLS != nil && r.TLS.Version != "" {
			b.WriteString(" · " + r.TLS.Version)
		}
		if r.TLS != nil && r.TLS.Variant != "" {
			b.WriteString(" (passes with " + r.TLS.Variant + ")")
		}
	}
	b.WriteString(" · " + Ms(r.Timings.Total))
	return b.String()
}
