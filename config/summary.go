package config

import (
	"fmt"
	"io"
	"strings"
)

// targetSummary is "gmail.com (MX from DNS)" or the pinned list.
func targetSummary(t Target) string {
	if len(t.MX) == 0 {
		return t.Domain + " (MX from DNS)"
	}
	return fmt.Sprintf("%s (MX pinned: %s)", t.Domain, strings.Join(t.MX, ", "))
}

// WriteSummary writes what gmailtls config check prints of a valid
// configuration: relays, target, storage, schedules, alerts, HTTP and
// whether Slack is ready.
func WriteSummary(w io.Writer, cfg *Config) {
	// The first line's wording is fixed ("config OK: N relays, target ..."):
	// scripts match it.
	fmt.Fprintf(w, "config OK: %d relays, target %s\n", len(cfg.Relays), targetSummary(cfg.Target))
	var relays []string
	for _, r := range cfg.Relays {
		s := r.Name + " (" + r.Kind
		switch {
		case r.Kind == "agent":
			s += " " + r.URL
		case len(r.SourceIPs) > 0:
			s += ", from " + strings.Join(r.SourceIPs, ", ")
		}
		relays = append(relays, s+")")
	}
	fmt.Fprintf(w, "  relays: %s\n", strings.Join(relays, "; "))
	if st := cfg.StorageSettings(); st.Driver == DriverPostgres {
		fmt.Fprintf(w, "  storage: postgres (%s)\n", st.Display())
	} else {
		fmt.Fprintf(w, "  storage: %s\n", st.Path)
	}
	if s := cfg.Probing.Schedule; s == "" || s == "off" {
		fmt.Fprintln(w, "  probing: off")
	} else {
		fmt.Fprintf(w, "  probing: %s\n", s)
	}
	if len(cfg.Reports) == 0 {
		fmt.Fprintln(w, "  reports: none")
	}
	for i, r := range cfg.Reports {
		fmt.Fprintf(w, "  report[%d]: %q to %s, window %s\n", i, r.Cron, r.Channel, r.Window)
	}
	if cfg.Alerts.Channel == "" {
		fmt.Fprintln(w, "  alerts: not posted (alerts.channel is empty)")
	} else {
		fmt.Fprintf(w, "  alerts: %s, reminders every %s\n", cfg.Alerts.Channel, cfg.Alerts.RemindEvery)
	}
	if cfg.HTTP.Listen == "off" {
		fmt.Fprintln(w, "  http: off")
	} else {
		fmt.Fprintf(w, "  http: %s (/metrics, /healthz, /readyz)\n", cfg.HTTP.Listen)
	}
	if err := cfg.RequireSlack(); err != nil {
		fmt.Fprintf(w, "  slack: %s mode; serve would not start until this is fixed:\n", cfg.Slack.Mode)
		for _, p := range Problems(err) {
			fmt.Fprintf(w, "    %s\n", p)
		}
	} else {
		fmt.Fprintf(w, "  slack: %s mode, tokens present\n", cfg.Slack.Mode)
	}
}

// WriteAgentSummary writes what gmailtls config check --agent prints of a
// valid agent configuration.
func WriteAgentSummary(w io.Writer, cfg *Config) {
	a := cfg.Agent
	mode := "HTTPS"
	if a.TLSCert == "" {
		mode = "plain HTTP, loopback only"
	}
	fmt.Fprintf(w, "agent config OK: listen %s (%s), target %s\n", a.Listen, mode, targetSummary(cfg.Target))
	secret := "secret_env " + a.SecretEnv
	if a.SecretFile != "" {
		secret = "secret_file " + cfg.Resolve(a.SecretFile)
	}
	if a.PreviousSecret != "" {
		secret += ", and a previous secret (rotation in progress)"
	}
	fmt.Fprintf(w, "  secret: from %s\n", secret)
	fmt.Fprintf(w, "  max_probes: %d, postqueue: %s, mta_stack: %t\n", a.MaxProbes, a.Postqueue, a.MTAStack)
}
