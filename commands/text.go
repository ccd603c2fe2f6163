package commands

import (
	"io"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/terminal"
)

// RenderText writes r as text with all of it kept: its chat markup, the
// "(only you)" of ephemeral answers and its numbered buttons. Tests compare
// messages in this form; people get terminal.Write's plain text.
func RenderText(w io.Writer, r message.Response) error {
	return terminal.Write(w, r, terminal.Options{Buttons: true, Markup: true})
}
