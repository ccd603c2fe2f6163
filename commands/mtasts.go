package commands

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/mtasts"
)

// mtastsSection presents the target domain's MTA-STS policy as the relay
// fetched it: the MTA-STS verdict (the policy, the MX list) apart from the
// TLS verdict of each MX host's certificate, as mtasts.Report.Summary
// keeps them apart, since they call for different fixes. why says why
// there is no report.
func mtastsSection(r *mtasts.Report, why string) message.Section {
	sec := message.Section{Heading: "MTA-STS"}
	if r == nil {
		sec.Lines = []string{"Not checked: " + why}
		return sec
	}
	sec.Heading = "MTA-STS policy of " + r.Domain
	verdict := string(r.Class)
	if r.Reason != "" {
		verdict += " (" + string(r.Reason) + ")"
	}
	sec.Fields = append(sec.Fields, message.Field{Label: "MTA-STS verdict", Value: verdict})
	if p := r.Policy; p != nil {
		sec.Fields = append(sec.Fields,
			message.Field{Label: "Mode", Value: string(p.Mode)},
			message.Field{Label: "Policy id", Value: r.ID},
			message.Field{Label: "max_age", Value: strconv.Itoa(p.MaxAge) + " s"},
			message.Field{Label: "MX patterns", Value: strings.Join(p.MX, " ")},
		)
	} else if r.ID != "" {
		sec.Fields = append(sec.Fields, message.Field{Label: "Policy id", Value: r.ID})
	}
	// Summary's lines: the MTA-STS part first, the TLS part on its own line.
	for _, l := range strings.Split(r.Summary(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			sec.Lines = append(sec.Lines, l)
		}
	}
	for _, c := range r.MXHosts {
		in := "not in policy"
		switch {
		case r.Policy == nil:
			in = "no policy to match"
		case c.InPolicy:
			in = "in policy (" + c.Pattern + ")"
		}
		line := fmt.Sprintf("%s: %s; certificate %s", c.Host, in, c.Cert)
		if c.CertDetail != "" && c.Cert != mtasts.CertValid {
			line += " (" + c.CertDetail + ")"
		}
		sec.Lines = append(sec.Lines, line)
	}
	return sec
}
