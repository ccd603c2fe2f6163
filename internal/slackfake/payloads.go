package slackfake

import (
	"encoding/json"
	"net/url"
)

// Slash describes a slash-command invocation. Empty fields take the values
// of Slack's documented example (team T0001, channel C2147483705, user
// U2147483697 "Steve"); Command defaults to "/gmailtls".
type Slash struct {
	Command     string
	Text        string
	UserID      string
	UserName    string
	ChannelID   string
	ChannelName string
	ResponseURL string
	TriggerID   string
}

func (c Slash) fields() [][2]string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return [][2]string{
		{"token", "gIkuvaNzQIHg97ATvDxqgjtO"},
		{"team_id", "T0001"},
		{"team_domain", "example"},
		{"enterprise_id", "E0001"},
		{"enterprise_name", "Globular Construct Inc"},
		{"channel_id", def(c.ChannelID, "C2147483705")},
		{"channel_name", def(c.ChannelName, "test")},
		{"user_id", def(c.UserID, "U2147483697")},
		{"user_name", def(c.UserName, "Steve")},
		{"command", def(c.Command, "/gmailtls")},
		{"text", c.Text},
		{"response_url", def(c.ResponseURL, "https://hooks.slack.com/commands/1234/5678")},
		{"trigger_id", def(c.TriggerID, "13345224609.738474920.8088930838d88f008e0")},
		{"api_app_id", "A123456"},
		{"is_enterprise_install", "false"},
	}
}

// Payload is the slash command as the "payload" of a Socket Mode
// slash_commands envelope: a JSON object of strings.
func (c Slash) Payload() map[string]string {
	out := map[string]string{}
	for _, kv := range c.fields() {
		out[kv[0]] = kv[1]
	}
	return out
}

// Form is the slash command as HTTP mode posts it to the Request URL.
func (c Slash) Form() url.Values {
	out := url.Values{}
	for _, kv := range c.fields() {
		out.Set(kv[0], kv[1])
	}
	return out
}

// Action describes a button press (a block_actions interaction). Empty
// fields take the values of Slack's documented block_actions example.
type Action struct {
	ActionID    string
	BlockID     string
	Value       string
	Text        string
	UserID      string
	UserName    string
	ChannelID   string
	MessageTS   string
	ResponseURL string
	// Ephemeral marks a press on an ephemeral message.
	Ephemeral bool
}

// Payload is the block_actions interaction as the "payload" of a Socket
// Mode interactive envelope.
func (a Action) Payload() map[string]any {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	channel := def(a.ChannelID, "CBR2V3XEX")
	ts := def(a.MessageTS, "1548261231.000200")
	user := def(a.UserID, "UA8RXUSPL")
	return map[string]any{
		"type":       "block_actions",
		"team":       map[string]any{"id": "T9TK3CUKW", "domain": "example"},
		"user":       map[string]any{"id": user, "username": def(a.UserName, "jtorrance"), "name": def(a.UserName, "jtorrance"), "team_id": "T9TK3CUKW"},
		"api_app_id": "AABA1ABCD",
		"token":      "9s8d9as89d8as9d8as989",
		"container": map[string]any{
			"type":          "message",
			"message_ts":    ts,
			"channel_id":    channel,
			"is_ephemeral":  a.Ephemeral,
			"is_app_unfurl": false,
		},
		"trigger_id": "85226216823.1234567890.d6ff69c9d2e7a1e1a0f8f0e0e6ed6a1f",
		"channel":    map[string]any{"id": channel, "name": "review-updates"},
		"message": map[string]any{
			"bot_id": "BAH5CA16Z",
			"type":   "message",
			"text":   "This content can't be displayed.",
			"user":   "UAJ2RU415",
			"ts":     ts,
		},
		"response_url": def(a.ResponseURL, "https://hooks.slack.com/actions/AABA1ABCD/1232321423432/D09sSasdasdAS9091209"),
		"actions": []any{map[string]any{
			"action_id": def(a.ActionID, "WaXA"),
			"block_id":  def(a.BlockID, "=qXel"),
			"text":      map[string]any{"type": "plain_text", "text": def(a.Text, "View"), "emoji": true},
			"value":     a.Value,
			"type":      "button",
			"action_ts": "1548426417.840180",
		}},
	}
}

// Form is the block_actions interaction as HTTP mode posts it to the
// interactivity Request URL: one form field "payload" holding the JSON.
func (a Action) Form() url.Values {
	b, _ := json.Marshal(a.Payload())
	return url.Values{"payload": {string(b)}}
}
