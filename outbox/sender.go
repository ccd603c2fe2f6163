package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// Sender is the chat service the worker delivers to; bot.Sender is Slack.
// The worker renders a message once per delivery and posts its parts one
// by one, recording each as Slack takes it; the Sender only renders, posts,
// updates, uploads and says what an error means.
type Sender interface {
	// Render renders r into the chat messages it is delivered as: part 0
	// the main message, then the replies in its thread (content folded out
	// of the main message, then r's own Thread).
	Render(r message.Response) []Part
	// Post posts part to channel, as a reply in the thread threadTS when
	// that is set, and returns its ts.
	Post(ctx context.Context, channel, threadTS string, part Part) (ts string, err error)
	// Update replaces the message channel/ts with part (chat.update).
	Update(ctx context.Context, channel, ts string, part Part) error
	// Upload uploads a file to channel, in the thread threadTS when set.
	Upload(ctx context.Context, channel, threadTS string, u Upload) error
	// Classify says what an error of Post, Update or Upload means for
	// delivery. The worker asks once per failed delivery.
	Classify(err error) Class
}

// Part is one rendered chat message, as the Sender's Render made it; the
// worker only hands it back to the same Sender.
type Part any

// Class is what a delivery error means. An error that is none of these is
// transient (a server or network error): its message is retried after a
// backoff.
type Class struct {
	// RateLimited: the service asks to wait RetryAfter (0: it did not say)
	// before anything more is sent.
	RateLimited bool
	RetryAfter  time.Duration
	// Suspended: the service refuses the bot token or the app's scopes.
	// No message can be delivered until an operator acts, and none is
	// wrong in itself: delivery pauses and every message is kept.
	Suspended bool
	// Permanent: no retry will deliver this message (channel_not_found,
	// not_in_channel, msg_too_long…); it is given up.
	Permanent bool
	// MissingScope: the app lacks an OAuth scope for the call. An upload
	// refused for it (files:write) is left out and a note says why, once
	// per channel; a post refused for it is also Suspended.
	MissingScope bool
}

// Upload is a file to upload: a picture such as a report's heatmap.
type Upload struct {
	Filename string `json:"filename"`
	Title    string `json:"title,omitempty"`
	// PNG is the image (base64 in the stored JSON).
	PNG []byte `json:"png"`
}

// DefaultChartFilename names a chart upload that does not name itself.
const DefaultChartFilename = "gmailtls-heatmap.png"

// delivery is one message as the worker sends it.
type delivery struct {
	key, channel string
	// threadKey is the outbox key of the thread's parent, threadTS its
	// Slack ts: when threadTS is set, the message is a reply in that
	// thread.
	threadKey, threadTS string
	// updateTS, when set, replaces the message with that ts (chat.update)
	// instead of posting a new one.
	updateTS string
	// postedTS and repliesPosted say what earlier attempts delivered of a
	// message that goes out as several parts: the ts of the main message
	// (for an update, the updated one's), "" when it has not gone out yet,
	// and how many of its thread replies went out after it.
	postedTS      string
	repliesPosted int
	// partSent records a part as soon as the service took it (part 0 the
	// main message, part n its n-th thread reply), so that no retry posts
	// it again; when it fails, delivery stops with its error.
	partSent func(part int, ts string) error
}

// post renders r once and delivers it part by part, from the first part
// not delivered yet, and returns the ts of its main message.
func (w *Worker) post(ctx context.Context, d delivery, r message.Response) (string, error) {
	parts := w.Sender.Render(r)
	if len(parts) == 0 {
		return "", fmt.Errorf("outbox: message %s renders to nothing", d.key)
	}
	sent := func(part int, ts string) error {
		if len(parts) == 1 {
			return nil
		}
		return d.partSent(part, ts)
	}
	mainTS := d.postedTS
	if mainTS == "" {
		if d.updateTS != "" {
			if err := w.Sender.Update(ctx, d.channel, d.updateTS, parts[0]); err != nil {
				return "", err
			}
			mainTS = d.updateTS
		} else {
			ts, err := w.Sender.Post(ctx, d.channel, d.threadTS, parts[0])
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
	if d.updateTS == "" && d.threadTS != "" {
		parent = d.threadTS
	}
	for part := d.repliesPosted + 1; part < len(parts); part++ {
		ts, err := w.Sender.Post(ctx, d.channel, parent, parts[part])
		if err != nil {
			return "", fmt.Errorf("outbox: %d of %d thread replies of message %s are posted: %w", part-1, len(parts)-1, d.key, err)
		}
		if err := sent(part, ts); err != nil {
			return "", err
		}
	}
	return mainTS, nil
}

// upload uploads the file of p. A chart stored by an earlier release (its
// figures, not its picture) is drawn with DrawChart first; one that cannot
// be drawn is left out with a warning, and the report stands without it.
func (w *Worker) upload(ctx context.Context, d delivery, p Payload) error {
	u := p.Upload
	if u == nil {
		if len(p.Chart) == 0 || string(p.Chart) == "null" {
			w.Logger.Warn("outbox: chart message without a chart; skipped", "key", d.key)
			return nil
		}
		if w.DrawChart == nil {
			w.Logger.Warn("outbox: a chart stored by an earlier release cannot be drawn here; the report stands without it", "key", d.key)
			return nil
		}
		png, title, err := w.DrawChart(p.Chart)
		if err != nil {
			w.Logger.Warn("outbox: chart could not be drawn; the report stands without it", "key", d.key, "err", err)
			return nil
		}
		u = &Upload{Filename: p.Filename, Title: title, PNG: png}
	}
	if len(u.PNG) == 0 {
		w.Logger.Warn("outbox: upload without a file; skipped", "key", d.key)
		return nil
	}
	if u.Filename == "" {
		u.Filename = DefaultChartFilename
	}
	return w.Sender.Upload(ctx, d.channel, d.threadTS, *u)
}

// noteMissingScope logs that a chart was left out for want of the
// files:write scope and enqueues a note saying so, once per channel, in
// the thread of the report.
func (w *Worker) noteMissingScope(ctx context.Context, d delivery) {
	w.Logger.Warn("outbox: the chart was not uploaded: the Slack app lacks the files:write scope; reports carry the text trend only",
		"key", d.key, "channel", d.channel)
	note := Message{
		Key:       NoteKeyFilesWrite(d.channel),
		Kind:      storage.KindReport,
		Channel:   d.channel,
		ThreadKey: d.threadKey,
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
	if _, err := Put(context.WithoutCancel(ctx), w.Store, note); err != nil {
		w.Logger.Error("outbox: could not enqueue the note about the missing files:write scope", "err", err)
	}
}

// NoteKeyFilesWrite is the key of the note explaining, once per channel,
// that reports come without their chart.
func NoteKeyFilesWrite(channel string) string { return "note:files-write:" + channel }

// DrawChart draws a chart that an earlier release stored as the heatmap's
// figures (the payload's "chart" object) rather than as a picture, and
// returns the PNG and its title; chart.RenderJSON is one.
type DrawChart func(figures []byte) (png []byte, title string, err error)
