package outbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// Payload is what an outbox message carries: a message.Response (its
// fields at the top level of the JSON, so the payload also decodes as a
// plain message.Response), or a file to upload.
type Payload struct {
	message.Response
	// Upload, when set, makes the message a file upload (in the thread of
	// ThreadKey when set): a report's heatmap, drawn by its producer.
	Upload *Upload `json:"upload,omitempty"`
	// Payloads of alerts stored by releases before migration 0008 of
	// storage also hold "meta", the alert model, which lives in storage's
	// alert_models now; it is ignored when read.

	// WithChart, Chart and Filename are a chart as releases before the
	// upload field stored it: the heatmap's figures, drawn at delivery
	// (Worker.DrawChart) and uploaded as Filename. They are read from
	// messages still pending in an existing database and never written.
	WithChart bool            `json:"with_chart,omitempty"`
	Chart     json.RawMessage `json:"chart,omitempty"`
	Filename  string          `json:"filename,omitempty"`
}

// isUpload reports whether p is a file to upload rather than a message to
// post.
func (p Payload) isUpload() bool {
	return p.Upload != nil || p.WithChart || len(p.Chart) > 0
}

// Encode returns p as JSON.
func (p Payload) Encode() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("outbox: encode message: %w", err)
	}
	return b, nil
}

// DecodePayload reads a payload written by Encode, by an earlier release
// (a chart as its figures) or as a bare message.Response.
func DecodePayload(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Payload{}, fmt.Errorf("outbox: stored message is not readable JSON: %w", err)
	}
	return p, nil
}

// Enqueuer is the part of storage.Store that producers write with.
type Enqueuer interface {
	Enqueue(ctx context.Context, m storage.OutboxMessage) (id int64, created bool, err error)
}

// Message is one message to enqueue: where it goes, its idempotency key and
// its payload.
type Message struct {
	Key     string
	Kind    string
	Channel string
	// ThreadKey and UpdateKey are the keys of the thread's parent and of
	// the message to update, both optional.
	ThreadKey string
	UpdateKey string
	Payload   Payload
}

// Put encodes m and enqueues it; created is false when a message with the
// same key was enqueued before (nothing is written then).
func Put(ctx context.Context, s Enqueuer, m Message) (created bool, err error) {
	b, err := m.Payload.Encode()
	if err != nil {
		return false, err
	}
	_, created, err = s.Enqueue(ctx, storage.OutboxMessage{
		Key:       m.Key,
		Kind:      m.Kind,
		Channel:   m.Channel,
		ThreadKey: m.ThreadKey,
		UpdateKey: m.UpdateKey,
		Payload:   b,
	})
	if err != nil {
		return false, fmt.Errorf("outbox: write message %s: %w", m.Key, err)
	}
	return created, nil
}
