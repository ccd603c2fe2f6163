package bot

import (
	"context"
	"errors"
	"log/slog"

	"github.com/gmailtls/gmailtls/config"
)

// FromConfig is the Config of the [slack] section s: its mode, secrets,
// addresses and slash command, with replay remembering HTTP-mode requests
// and log for the bot's log.
func FromConfig(s config.Slack, replay ReplayMemory, log *slog.Logger) Config {
	return Config{
		Mode:             s.Mode,
		BotToken:         s.BotToken.Value(),
		AppToken:         s.AppToken.Value(),
		SigningSecret:    s.SigningSecret.Value(),
		Replay:           replay,
		APIURL:           s.APIURL,
		Listen:           s.Listen,
		Command:          s.Command,
		ResponseURLHosts: s.ResponseURLHosts,
		Logger:           log,
	}
}

// NeedsRestart reports whether going from the [slack] section old to next
// changes what a running bot cannot take on a reload: the tokens, the mode
// or the HTTP-mode listen address.
func NeedsRestart(old, next config.Slack) bool {
	return old.BotToken != next.BotToken || old.AppToken != next.AppToken ||
		old.Mode != next.Mode || old.Listen != next.Listen
}

// CheckReady is /readyz's check: nil once the bot is connected to Slack.
func (b *Bot) CheckReady(context.Context) error {
	if b.Ready() {
		return nil
	}
	return errors.New("slack is not connected yet")
}
