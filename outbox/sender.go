package outbox

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/storage"
)

// Slack is the part of the bot the Sender uses (bot.Bot satisfies it).
type Slack interface {
	Post(ctx context.Context, channel string, r commands.Response, threadTS string) (ts string, err error)
	Update(ctx context.Context, channel, ts string, r commands.Response) error
	UploadPNG(ctx context.Context, channel, threadTS, filename, title string, png []byte) error
}

// SlackSender is the Sender that talks to Slack: it decodes a Payload and
// posts it (chat.postMessage), updates the message it replaces
// (chat.update) or, for a chart, draws the heatmap and uploads it.
type SlackSender struct {
	Slack Slack
	// MissingScope tells an upload refused for a missing files:write scope
	// (bot.IsMissingScope). Such a chart is not retried: the report's text
	// trend stands alone and a note saying why is enqueued once per
	// channel (key "note:files-write:<channel>") through Notes.
	MissingScope func(error) bool
	// Notes enqueues that note (the store); nil: the note is only logged.
	Notes  Enqueuer
	Logger *slog.Logger
}

// NoteKeyFilesWrite is the key of the note explaining, once per channel,
// that reports come without their chart.
func NoteKeyFilesWrite(channel string) string { return "note:files-write:" + channel }

// Deliver implements Sender.
func (s *SlackSender) Deliver(ctx context.Context, d Delivery) (string, error) {
	if s.Slack == nil {
		return "", ErrNoSender
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := DecodePayload(d.Payload)
	if err != nil {
		return "", fmt.Errorf("%w (message %s)", err, d.Key)
	}
	if p.WithChart || p.Chart != nil {
		return "", s.upload(ctx, d, p, log)
	}
	if d.UpdateTS != "" {
		if err := s.Slack.Update(ctx, d.Channel, d.UpdateTS, p.Response); err != nil {
			return "", err
		}
		return d.UpdateTS, nil
	}
	ts, err := s.Slack.Post(ctx, d.Channel, p.Response, d.ThreadTS)
	if err != nil && ts != "" {
		// The message itself is posted; only part of its thread is not.
		// Posting it again would duplicate it, so it counts as delivered.
		log.Warn("outbox: message posted but part of its thread was not", "key", d.Key, "channel", d.Channel, "err", err)
		return ts, nil
	}
	return ts, err
}

func (s *SlackSender) upload(ctx context.Context, d Delivery, p Payload, log *slog.Logger) error {
	if p.Chart == nil {
		log.Warn("outbox: chart message without a chart; skipped", "key", d.Key)
		return nil
	}
	png, err := chart.Render(*p.Chart)
	if err != nil {
		log.Warn("outbox: chart could not be drawn; the report stands without it", "key", d.Key, "err", err)
		return nil
	}
	name := p.Filename
	if name == "" {
		name = "gmailtls-heatmap.png"
	}
	err = s.Slack.UploadPNG(ctx, d.Channel, d.ThreadTS, name, p.Chart.Title, png)
	if err == nil || s.MissingScope == nil || !s.MissingScope(err) {
		return err
	}
	log.Warn("outbox: the chart was not uploaded: the Slack app lacks the files:write scope; reports carry the text trend only",
		"key", d.Key, "channel", d.Channel)
	if s.Notes == nil {
		return nil
	}
	note := Message{
		Key:       NoteKeyFilesWrite(d.Channel),
		Kind:      storage.KindReport,
		Channel:   d.Channel,
		ThreadKey: d.ThreadKey,
		Payload: Payload{Response: commands.Response{
			Title:   "Chart not posted",
			Verdict: commands.VerdictInfo,
			Summary: "The heatmap could not be uploaded: the Slack app lacks the files:write scope.",
			Sections: []commands.Section{{Lines: []string{
				"The heatmap image could not be uploaded because the Slack app lacks the `files:write` scope.",
				"Reports carry the text trend only. Add the scope under OAuth & Permissions and reinstall the app to get the chart.",
			}}},
		}},
	}
	if _, err := Put(context.WithoutCancel(ctx), s.Notes, note); err != nil {
		log.Error("outbox: could not enqueue the note about the missing files:write scope", "err", err)
	}
	return nil
}
