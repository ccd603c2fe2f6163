package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// day is the unit of the "d" suffix: 24 hours, whatever the calendar says.
const day = 24 * time.Hour

// ParseDuration parses a Go duration ("20s", "1h30m") that may also use a
// "d" suffix for 24-hour days ("30d", "1d12h", "1.5d").
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if !strings.Contains(s, "d") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: use a number with a unit, such as \"20s\", \"5m\", \"1h\" or \"30d\"", orig)
		}
		return d, nil
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		j := i
		for j < len(s) && (s[j] < '0' || s[j] > '9') && s[j] != '.' {
			j++
		}
		num, unit := s[:i], s[i:j]
		s = s[j:]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("%q is not a duration: use a number with a unit, such as \"20s\", \"5m\", \"1h\" or \"30d\"", orig)
		}
		var part time.Duration
		if unit == "d" {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration: bad number %q", orig, num)
			}
			if f*float64(day) >= math.MaxInt64 {
				return 0, fmt.Errorf("%q is too long a duration", orig)
			}
			if n, err := strconv.ParseInt(num, 10, 64); err == nil {
				part = time.Duration(n) * day
			} else {
				part = time.Duration(f * float64(day))
			}
		} else {
			d, err := time.ParseDuration(num + unit)
			if err != nil {
				switch unit {
				case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
					return 0, fmt.Errorf("%q is not a duration: %q is too large or malformed", orig, num+unit)
				}
				return 0, fmt.Errorf("%q is not a duration: unknown unit %q (use ns, us, ms, s, m, h or d)", orig, unit)
			}
			part = d
		}
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("%q is too long a duration", orig)
		}
		total += part
	}
	if neg {
		total = -total
	}
	return total, nil
}

// UnmarshalText accepts what ParseDuration accepts.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in the form UnmarshalText reads, with
// whole days as "d": "30d", "1d12h", "20s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats like MarshalText.
func (d Duration) String() string {
	v := d.Duration
	if v == 0 {
		return "0s"
	}
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
		if v == math.MinInt64 {
			return v.String()
		}
		v = -v
	}
	if days := v / day; days > 0 {
		b.WriteString(strconv.FormatInt(int64(days), 10))
		b.WriteByte('d')
		v -= days * day
		if v == 0 {
			return b.String()
		}
	}
	s := v.String()
	// 12h0m0s → 12h, 5m0s → 5m.
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	b.WriteString(s)
	return b.String()
}
