package outbox

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gmailtls/gmailtls/bot"
	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// Slack is the part of the bot the Sender uses (bot.Bot satisfies it). A
// Response is Parts Slack messages: part 0 the main message, then the
// replies in its thread (content folded out of it, then its own Thread).
type Slack interface {
	Parts(r message.Response) int
	PostPart(ctx context.Context, channel string, r message.Response, part int, threadTS string) (ts string, err error)
	UpdateMain(ctx context.Context, channel, ts string, r message.Response) error
	UploadPNG(ctx context.Context, channel, threadTS, filename, title string, png []byte) error
}

// SlackSender is the Sender that talks to Slack: it decodes a Payload and
// posts it (chat.postMessage), updates the message it replaces
// (chat.update) or, for a chart, draws the heatmap and uploads it. The
// thread replies of a long message are posted one by one, each reported
// through Delivery.PartSent, and a retry resumes after those an earlier
// attempt posted. Errors that bot.IsAuth calls a refused token or scope
// are returned wrapped in ErrSuspended.
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
		return "", suspendOnAuth(s.upload(ctx, d, p, log))
	}
	ts, err := s.post(ctx, d, p.Response)
	return ts, suspendOnAuth(err)
}

// post delivers r part by part, from the first one not delivered yet, and
// returns the ts of its main message.
func (s *SlackSender) post(ctx context.Context, d Delivery, r message.Response) (string, error) {
	parts := s.Slack.Parts(r)
	sent := func(part int, ts string) error {
		if d.PartSent == nil || parts == 1 {
			return nil
		}
		return d.PartSent(part, ts)
	}
	mainTS := d.PostedTS
	if mainTS == "" {
		if d.UpdateTS != "" {
			if err := s.Slack.UpdateMain(ctx, d.Channel, d.UpdateTS, r); err != nil {
				return "", err
			}
			mainTS = d.UpdateTS
		} else {
			ts, err := s.Slack.PostPart(ctx, d.Channel, r, 0, d.ThreadTS)
			if err != nil {
				return "", err
			}
			mainTS = ts
		}
		if err := sent(0, mainTS); err != nil {
			return "", err
		}
	}
	// Replies go in the thread the message is in, else in its own; those
	// of an update in the updated message's.
	parent := mainTS
	if d.UpdateTS == "" && d.ThreadTS != "" {
		parent = d.ThreadTS
	}
	for part := d.RepliesPosted + 1; part < parts; part++ {
		ts, err := s.Slack.PostPart(ctx, d.Channel, r, part, parent)
		if err != nil {
			return "", fmt.Errorf("outbox: %d of %d thread replies of message %s are posted: %w", part-1, parts-1, d.Key, err)
		}
		if err := sent(part, ts); err != nil {
			return "", err
		}
	}
	return mainTS, nil
}

// suspendOnAuth wraps in ErrSuspended an error of Slack refusing the bot
// token or the app's scopes.
func suspendOnAuth(err error) error {
	if err != nil && bot.IsAuth(err) {
		return fmt.Errorf("%w: %w", ErrSuspended, err)
	}
	return err
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
		Payload: Payload{Response: message.Response{
			Title:   "Chart not posted",
			Verdict: message.VerdictInfo,
			Summary: "The heatmap could not be uploaded: the Slack app lacks the files:write scope.",
			Sections: []message.Section{{Lines: []string{
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
