package bot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

// The manifests are read with a small, strict reader of the YAML block
// subset they use (mappings, sequences, plain and quoted scalars,
// comments), converted to JSON, and decoded into slack.Manifest with
// unknown fields refused, so a misspelt key fails the test. Anything
// outside the subset (flow style, anchors, multi-line scalars) is an error
// rather than a silent misreading.

type yline struct {
	n      int
	indent int
	text   string
}

func yamlLines(src string) ([]yline, error) {
	var out []yline
	for i, raw := range strings.Split(src, "\n") {
		if strings.Contains(raw, "\t") {
			return nil, fmt.Errorf("line %d: tab", i+1)
		}
		text := stripComment(raw)
		if strings.TrimSpace(text) == "" {
			continue
		}
		indent := len(text) - len(strings.TrimLeft(text, " "))
		out = append(out, yline{n: i + 1, indent: indent, text: strings.TrimSpace(text)})
	}
	return out, nil
}

// stripComment removes a " #" comment outside quotes.
func stripComment(s string) string {
	var q rune
	for i, r := range s {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '"' || r == '\'':
			q = r
		case r == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " ")
		}
	}
	return strings.TrimRight(s, " ")
}

func yamlScalar(s string, n int) (any, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		var v string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("line %d: bad double-quoted scalar %s", n, s)
		}
		return v, nil
	case strings.HasPrefix(s, "'"):
		if len(s) < 2 || !strings.HasSuffix(s, "'") {
			return nil, fmt.Errorf("line %d: bad single-quoted scalar %s", n, s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case strings.ContainsAny(s[:1], "{[&*!|>%@`"):
		return nil, fmt.Errorf("line %d: %q is outside the YAML subset this test reads", n, s)
	case s == "true":
		return true, nil
	case s == "false":
		return false, nil
	case s == "null" || s == "~":
		return nil, nil
	}
	if i, err := strconv.Atoi(s); err == nil {
		return i, nil
	}
	if strings.Contains(s, ": ") {
		return nil, fmt.Errorf("line %d: unquoted \": \" in %q", n, s)
	}
	return s, nil
}

// splitKey splits "key: value" or "key:"; a colon not followed by a space
// (chat:write, https://…) belongs to a plain scalar.
func splitKey(s string) (key, rest string, ok bool) {
	if i := strings.Index(s, ": "); i >= 0 {
		return s[:i], s[i+2:], true
	}
	if k, found := strings.CutSuffix(s, ":"); found {
		return k, "", true
	}
	return "", "", false
}

type yparser struct {
	lines []yline
	i     int
}

func (p *yparser) block(indent int) (any, error) {
	if p.i >= len(p.lines) || p.lines[p.i].indent != indent {
		return nil, fmt.Errorf("line %d: unexpected indentation", p.lines[min(p.i, len(p.lines)-1)].n)
	}
	if strings.HasPrefix(p.lines[p.i].text, "- ") || p.lines[p.i].text == "-" {
		return p.sequence(indent)
	}
	return p.mapping(indent)
}

func (p *yparser) mapping(indent int) (map[string]any, error) {
	m := map[string]any{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent {
		l := p.lines[p.i]
		if strings.HasPrefix(l.text, "- ") {
			return nil, fmt.Errorf("line %d: sequence item inside a mapping", l.n)
		}
		key, rest, ok := splitKey(l.text)
		if !ok || key == "" || strings.ContainsAny(key, " \"'") {
			return nil, fmt.Errorf("line %d: not a \"key: value\" line: %q", l.n, l.text)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", l.n, key)
		}
		rest = strings.TrimSpace(rest)
		p.i++
		if rest != "" {
			v, err := yamlScalar(rest, l.n)
			if err != nil {
				return nil, err
			}
			m[key] = v
			continue
		}
		if p.i >= len(p.lines) || p.lines[p.i].indent <= indent {
			m[key] = nil
			continue
		}
		v, err := p.block(p.lines[p.i].indent)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return nil, fmt.Errorf("line %d: unexpected indentation", p.lines[p.i].n)
	}
	return m, nil
}

func (p *yparser) sequence(indent int) ([]any, error) {
	var out []any
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && strings.HasPrefix(p.lines[p.i].text, "- ") {
		l := p.lines[p.i]
		item := strings.TrimSpace(strings.TrimPrefix(l.text, "- "))
		if k, _, ok := splitKey(item); ok && !strings.ContainsAny(k, " \"'") {
			// A mapping item: its first key sits on the dash line.
			p.lines[p.i] = yline{n: l.n, indent: indent + 2, text: item}
			m, err := p.mapping(indent + 2)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
			continue
		}
		v, err := yamlScalar(item, l.n)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.i++
	}
	return out, nil
}

func readManifest(t *testing.T, path string) slack.Manifest {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := yamlLines(string(src))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p := &yparser{lines: lines}
	doc, err := p.mapping(0)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if p.i != len(lines) {
		t.Fatalf("%s: line %d: not read", path, lines[p.i].n)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m slack.Manifest
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s does not decode as a Slack app manifest: %v", path, err)
	}
	return m
}

func TestManifests(t *testing.T) {
	const usage = "check <relay|all> · status · history <relay> [24h] · relays · evidence <relay> · report · help"
	for _, tc := range []struct {
		file   string
		socket bool
	}{
		{"slack-app-manifest.socket.yaml", true},
		{"slack-app-manifest.http.yaml", false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := readManifest(t, filepath.Join("..", "docs", tc.file))
			if m.Metadata.MajorVersion != 1 {
				t.Errorf("_metadata.major_version = %d", m.Metadata.MajorVersion)
			}
			if m.Display.Name == "" || len(m.Display.Name) > 35 {
				t.Errorf("display_information.name %q (1–35 characters)", m.Display.Name)
			}
			for _, s := range []string{"commands", "chat:write"} {
				if !slices.Contains(m.OAuthConfig.Scopes.Bot, s) {
					t.Errorf("bot scopes %v lack %s", m.OAuthConfig.Scopes.Bot, s)
				}
			}
			if m.Settings.Interactivity == nil || !m.Settings.Interactivity.IsEnabled {
				t.Errorf("interactivity is not enabled")
			}
			if m.Settings.SocketModeEnabled != tc.socket {
				t.Errorf("socket_mode_enabled = %v", m.Settings.SocketModeEnabled)
			}
			if len(m.Features.SlashCommands) != 1 {
				t.Fatalf("%d slash commands", len(m.Features.SlashCommands))
			}
			sc := m.Features.SlashCommands[0]
			if sc.Command != "/gmailtls" || sc.UsageHint != usage || sc.Description == "" {
				t.Errorf("slash command %+v", sc)
			}
			if tc.socket {
				if sc.Url != "" || m.Settings.Interactivity.RequestUrl != "" {
					t.Errorf("socket mode manifest has Request URLs")
				}
			} else {
				if !strings.HasSuffix(sc.Url, PathCommands) || !strings.HasPrefix(sc.Url, "https://") {
					t.Errorf("slash command url %q", sc.Url)
				}
				if u := m.Settings.Interactivity.RequestUrl; !strings.HasSuffix(u, PathInteractivity) || !strings.HasPrefix(u, "https://") {
					t.Errorf("interactivity request_url %q", u)
				}
			}
		})
	}
}

func TestYAMLSubsetRefusesWhatItCannotRead(t *testing.T) {
	for _, src := range []string{
		"a: {b: 1}\n",
		"a: [1, 2]\n",
		"a:\n  b: 1\n   c: 2\n",
		"a: 1\na: 2\n",
		"a: &x 1\n",
		"a: |\n  text\n",
	} {
		lines, err := yamlLines(src)
		if err == nil {
			p := &yparser{lines: lines}
			_, err = p.mapping(0)
			if err == nil && p.i != len(lines) {
				err = fmt.Errorf("not all read")
			}
		}
		if err == nil {
			t.Errorf("accepted %q", src)
		}
	}
}
