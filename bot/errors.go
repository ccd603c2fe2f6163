package bot

import (
	"cmp"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/gmailtls/gmailtls/outbox"
	"github.com/slack-go/slack"
)

// Errors of the bot itself, for errors.Is.
var (
	// ErrConfig marks a Config that cannot run.
	ErrConfig = errors.New("bot: invalid configuration")
	// ErrAuth marks a token Slack rejected.
	ErrAuth = errors.New("slack: token rejected")
	// errResponseURLRefused is a response_url outside
	// Config.ResponseURLHosts: never posted to, and permanent.
	errResponseURLRefused = errors.New("slack: refusing to post to a response_url outside [slack] response_url_hosts")
)

// IsRateLimited reports whether err is Slack's rate limit (HTTP 429), and
// how long Slack asked to wait (0 when it did not say).
func IsRateLimited(err error) (retryAfter time.Duration, ok bool) {
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return rl.RetryAfter, true
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok && sc.Code == http.StatusTooManyRequests {
		return 0, true
	}
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok && se.Err == "ratelimited" {
		return 0, true
	}
	return 0, false
}

// permanentErrors are Slack API errors that retrying cannot fix: the
// channel, the message, the token or the payload is wrong. Those of the
// token and the app's scopes are also in authErrors.
var permanentErrors = map[string]bool{
	"channel_not_found":       true,
	"not_in_channel":          true,
	"is_archived":             true,
	"channel_is_archived":     true,
	"invalid_auth":            true,
	"not_authed":              true,
	"account_inactive":        true,
	"token_revoked":           true,
	"token_expired":           true,
	"no_permission":           true,
	"missing_scope":           true,
	"not_allowed_token_type":  true,
	"restricted_action":       true,
	"ekm_access_denied":       true,
	"team_access_not_granted": true,
	"msg_too_long":            true,
	"no_text":                 true,
	"invalid_blocks":          true,
	"invalid_blocks_format":   true,
	"too_many_attachments":    true,
	"invalid_arguments":       true,
	"message_not_found":       true,
	"cant_update_message":     true,
	"edit_window_closed":      true,
	"user_not_in_channel":     true,
	"used_url":                true,
	"expired_url":             true,
}

// authErrors are Slack API errors about the bot token or the app's scopes
// rather than one message: until an operator fixes the token or the scopes,
// no message can be delivered, and once they are fixed every message can.
var authErrors = map[string]bool{
	"invalid_auth":            true,
	"not_authed":              true,
	"account_inactive":        true,
	"token_revoked":           true,
	"token_expired":           true,
	"missing_scope":           true,
	"not_allowed_token_type":  true,
	"team_access_not_granted": true,
}

// IsPermanent reports whether err is a Slack failure that retrying the same
// call will not fix (channel_not_found, not_in_channel, invalid_auth,
// missing_scope, a malformed message, an expired response_url…). Rate
// limits, server errors and network errors are not permanent. Of the
// permanent ones, IsAuth tells those of the token or the app's scopes,
// which a message waiting in the outbox outlives: they are fixed once for
// all messages.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := IsRateLimited(err); ok {
		return false
	}
	if errors.Is(err, ErrAuth) || errors.Is(err, errResponseURLRefused) {
		return true
	}
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		return permanentErrors[se.Err]
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		return sc.Code >= 400 && sc.Code < 500 && sc.Code != http.StatusRequestTimeout
	}
	return false
}

// IsAuth reports whether err is Slack refusing the bot token or the app's
// scopes (invalid_auth, not_authed, account_inactive, token_revoked,
// token_expired, missing_scope, not_allowed_token_type,
// team_access_not_granted) or wraps ErrAuth: no message can be delivered
// until an operator fixes SLACK_BOT_TOKEN or the app's OAuth scopes, and
// none is wrong in itself. The outbox pauses all delivery on such an error
// and keeps the messages.
func IsAuth(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrAuth) {
		return true
	}
	return authErrors[slackCode(err)]
}

// ErrorCode returns Slack's error code in err ("channel_not_found",
// "token_revoked", "ratelimited"…) when it is one the bot knows, so that
// the result can label a metric without growing its label set; "" for any
// other error.
func ErrorCode(err error) string {
	code := slackCode(err)
	if permanentErrors[code] || authErrors[code] || code == "ratelimited" {
		return code
	}
	return ""
}

// IsMissingScope reports whether Slack refused a call because the app lacks
// an OAuth scope (for uploads: files:write).
func IsMissingScope(err error) bool {
	se, ok := errors.AsType[slack.SlackErrorResponse](err)
	return ok && se.Err == "missing_scope"
}

// slackCode returns Slack's error code in err, or "".
func slackCode(err error) string {
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		return se.Err
	}
	return ""
}

// hint is the operator's next step for a Slack error, or "".
func hint(err error) string {
	switch slackCode(err) {
	case "not_in_channel":
		return "invite the bot to the channel (/invite @gmailtls)"
	case "channel_not_found":
		return "check the channel ID, and that the bot was invited to it"
	case "missing_scope":
		return "add the missing scope under OAuth & Permissions and reinstall the app"
	case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive":
		return "check SLACK_BOT_TOKEN"
	}
	return ""
}

// Metric codes of ClassifySlackError for errors without a Slack error code
// the bot knows.
const (
	CodeRateLimited = "rate_limited"
	CodeAuth        = "auth"
	CodePermanent   = "permanent"
	CodeServerError = "server_error"
	// CodeDNSError is Slack's host name not resolving: the bot's DNS, not
	// Slack.
	CodeDNSError = "dns_error"
	// CodeNetworkError is no connection to Slack, or one that broke or
	// timed out, before Slack answered.
	CodeNetworkError = "network_error"
)

// ClassifySlackError sorts the error of a Slack call for the outbox, and
// names it for the metrics (gmailtls_slack_errors_total): code is Slack's
// error code when the bot knows it ("channel_not_found", "token_revoked"…),
// else CodeRateLimited, CodeAuth, CodePermanent, CodeDNSError,
// CodeNetworkError or CodeServerError.
//
//   - a rate limit (429) is RateLimited, with Slack's Retry-After;
//   - Slack refusing the bot token or the app's scopes (IsAuth) is
//     Suspended: the outbox pauses all delivery and keeps every message;
//     a missing scope is also MissingScope (for an upload: files:write);
//   - an error no retry will fix (IsPermanent) is Permanent;
//   - anything else is transient: a name that did not resolve
//     (CodeDNSError), a connection that failed (CodeNetworkError), a 5xx
//     or an answer the bot does not know (CodeServerError).
func ClassifySlackError(err error) (c outbox.Class, code string) {
	if ra, ok := IsRateLimited(err); ok {
		return outbox.Class{RateLimited: true, RetryAfter: ra}, CodeRateLimited
	}
	if IsAuth(err) {
		return outbox.Class{Suspended: true, MissingScope: IsMissingScope(err)}, cmp.Or(ErrorCode(err), CodeAuth)
	}
	if IsPermanent(err) {
		return outbox.Class{Permanent: true}, cmp.Or(ErrorCode(err), CodePermanent)
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return outbox.Class{}, CodeDNSError
	}
	if networkError(err) {
		return outbox.Class{}, CodeNetworkError
	}
	return outbox.Class{}, CodeServerError
}

// networkError reports whether err is the connection to Slack failing
// before an answer: refused, reset, closed early, or timed out.
func networkError(err error) bool {
	if connectionDropped(err) {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
