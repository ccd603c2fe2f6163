package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gmailtls/gmailtls/mtasts"
)

// mtasts answers GET /v1/mtasts: the agent's target domain's MTA-STS
// discovery (mtasts.Discovery as JSON) as this relay sees it, fetched with
// the agent's own resolver and dialer. An agent whose target MX hosts are
// pinned has no domain whose policy applies: 409.
func (s *server) mtasts(w http.ResponseWriter, r *http.Request, _ []byte) {
	if len(s.cfg.Base.MX) > 0 {
		httpError(w, http.StatusConflict, "the agent's target MX hosts are pinned: no domain's MTA-STS policy applies")
		return
	}
	c := s.cfg.MTASTS
	if c == nil {
		c = &mtasts.Client{}
	}
	d, err := c.Fetch(r.Context(), cmpDomain(s.cfg.Base.Domain))
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, d)
}

// cmpDomain is the target domain, gmail.com when unset (as probe.Config).
func cmpDomain(d string) string {
	if d == "" {
		return "gmail.com"
	}
	return d
}

// MTASTS asks the agent for its target domain's MTA-STS discovery, fetched
// by the relay itself (GET /v1/mtasts). Errors wrap ErrAgentUnreachable or
// ErrAgentError.
func (a *Agent) MTASTS(ctx context.Context) (mtasts.Discovery, error) {
	data, err := a.do(ctx, http.MethodGet, PathMTASTS, nil)
	if err != nil {
		return mtasts.Discovery{}, err
	}
	var d mtasts.Discovery
	if err := json.Unmarshal(data, &d); err != nil {
		return mtasts.Discovery{}, fmt.Errorf("%w: relay %s: the agent's MTA-STS answer is not valid JSON: %w", ErrAgentError, a.name, err)
	}
	return d, nil
}
