package bot

import (
	"context"
	"fmt"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/outbox"
)

// Sender is the outbox's Slack (outbox.Sender): it renders a Response to
// Block Kit (RenderMessages) and posts (chat.postMessage), updates
// (chat.update) and uploads (files upload v2) through its Bot's Web API
// client, so that one client serves the replies and the outbox. Each call
// is retried as Config.APIRetries says; the outbox retries what is left,
// resuming after the parts that went out.
type Sender struct {
	b       *Bot
	observe func(code string)
}

var _ outbox.Sender = (*Sender)(nil)

// NewSender returns the outbox's Sender for b. observe, when not nil, is
// called with the metric code of every error the outbox classifies (see
// ClassifySlackError), to count it.
func NewSender(b *Bot, observe func(code string)) *Sender {
	return &Sender{b: b, observe: observe}
}

// Render renders r into its Slack messages: the main message, then the
// replies in its thread.
func (s *Sender) Render(r message.Response) []outbox.Part {
	rendered := RenderMessages(r)
	parts := make([]outbox.Part, 0, 1+len(rendered.Thread))
	parts = append(parts, rendered.Main)
	for _, m := range rendered.Thread {
		parts = append(parts, m)
	}
	return parts
}

// Post posts part (a Message from Render) to channel, in the thread
// threadTS when set, and returns its ts.
func (s *Sender) Post(ctx context.Context, channel, threadTS string, part outbox.Part) (string, error) {
	m, err := messageOf(part)
	if err != nil {
		return "", err
	}
	return s.b.postMessage(ctx, channel, m, threadTS)
}

// Update replaces the message at channel/ts with part (chat.update).
func (s *Sender) Update(ctx context.Context, channel, ts string, part outbox.Part) error {
	m, err := messageOf(part)
	if err != nil {
		return err
	}
	return s.b.updateMessage(ctx, channel, ts, m)
}

// Upload uploads u's PNG to channel, in the thread threadTS when set.
func (s *Sender) Upload(ctx context.Context, channel, threadTS string, u outbox.Upload) error {
	return s.b.UploadPNG(ctx, channel, threadTS, u.Filename, u.Title, u.PNG)
}

// Classify sorts err with ClassifySlackError and counts it.
func (s *Sender) Classify(err error) outbox.Class {
	c, code := ClassifySlackError(err)
	if s.observe != nil {
		s.observe(code)
	}
	return c
}

// messageOf is the Message of a part the Sender rendered.
func messageOf(part outbox.Part) (Message, error) {
	m, ok := part.(Message)
	if !ok {
		return Message{}, fmt.Errorf("slack: %T is not a message the Slack sender rendered", part)
	}
	return m, nil
}
