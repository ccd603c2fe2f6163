package terminal

import (
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/message"
)

// TestPhrases: a section's Phrases follow its Lines, their mentions
// written as Slack writes them with Markup and as @U… without.
func TestPhrases(t *testing.T) {
	r := message.Response{Title: "alert", Sections: []message.Section{{
		Lines:   []string{"line"},
		Phrases: []message.Phrase{{message.Text("Acknowledged by "), message.Mention("U024BE7LH"), message.Text(" at 14:20.")}},
	}}}
	if got := render(t, r, Options{Markup: true}); !strings.Contains(got, "line\nAcknowledged by <@U024BE7LH> at 14:20.\n") {
		t.Errorf("with markup:\n%s", got)
	}
	if got := render(t, r, Options{}); !strings.Contains(got, "line\nAcknowledged by @U024BE7LH at 14:20.\n") {
		t.Errorf("plain:\n%s", got)
	}
}
