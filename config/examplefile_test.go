package config

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const exampleFile = "../config.toml.example"

// TestExampleFileLoads: config.toml.example runs as it is.
func TestExampleFileLoads(t *testing.T) {
	c, err := Load(exampleFile, fakeenv(nil))
	if err != nil {
		t.Fatalf("config.toml.example does not load:\n%v", err)
	}
	if len(c.Relays) != 1 || c.Relays[0].Name != "relay-1" || c.Relays[0].Kind != "local" {
		t.Errorf("relays = %+v, want one local relay-1", c.Relays)
	}
	if len(c.Reports) != 1 || c.Reports[0].Channel == "" {
		t.Errorf("reports = %+v, want one", c.Reports)
	}
	// The values the example writes are the defaults, but for the
	// database: the example's is the console demo's, kept under demo/
	// (gitignored) so that a deployment copied from it does not inherit
	// the demo's history.
	d := Default()
	d.Storage.Path = "demo/gmailtls-demo.db"
	for _, s := range []struct {
		name      string
		got, want any
	}{
		{"target", c.Target, d.Target},
		{"storage", c.Storage, d.Storage},
		{"retention", c.Retention, d.Retention},
		{"probing", c.Probing, d.Probing},
		{"escalation", c.Escalation, d.Escalation},
		{"http", c.HTTP, d.HTTP},
		{"log", c.Log, d.Log},
		{"slack", c.Slack, d.Slack},
		{"agent", c.Agent, d.Agent},
		{"relay timeout", c.Relays[0].Timeout, d.Relays[0].Timeout},
		{"report window", c.Reports[0].Window, Duration{24 * time.Hour}},
		{"alerts.remind_every", c.Alerts.RemindEvery, d.Alerts.RemindEvery},
		{"alerts.flap_limit", c.Alerts.FlapLimit, d.Alerts.FlapLimit},
	} {
		if !reflect.DeepEqual(s.got, s.want) {
			t.Errorf("config.toml.example [%s] = %+v, default %+v", s.name, s.got, s.want)
		}
	}
}

// commentedKey matches a commented-out key or table of the example:
// "# url = ...", "# [[relay]]", "# [agent]".
var commentedKey = regexp.MustCompile(`^# ?((?:\[\[?[a-z_.]+\]\]?)|(?:[a-z_]+ = .*))$`)

// uncomment turns every commented-out key of the example into a live one.
func uncomment(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if m := commentedKey.FindStringSubmatch(l); m != nil {
			lines[i] = m[1]
		}
	}
	return strings.Join(lines, "\n")
}

// TestExampleFileDocumentsEveryKey: every key of Config (its toml tags,
// found by reflection) appears in config.toml.example, live or commented
// out, and everything commented out is a real key.
func TestExampleFileDocumentsEveryKey(t *testing.T) {
	data, err := readFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	text := []byte(uncomment(data))
	var c Config
	err = toml.NewDecoder(bytes.NewReader(text)).DisallowUnknownFields().Decode(&c)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		t.Errorf("config.toml.example documents keys that do not exist:\n%s", strict.String())
	} else if err != nil {
		t.Fatalf("config.toml.example with its comments removed is not valid: %v", err)
	}
	ix, err := indexKeys(text)
	if err != nil {
		t.Fatal(err)
	}
	keys := tagKeys(reflect.TypeFor[Config](), "")
	written := map[string]bool{}
	for _, w := range ix.keys {
		k := plain(w.path)
		written[k] = true
		if !keys[k] { // the decoder ignores case; the documentation must not
			t.Errorf("config.toml.example line %d: %s is not a key", w.line, k)
		}
	}
	var missing []string
	for k := range keys {
		if !written[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("config.toml.example does not mention: %s", strings.Join(missing, ", "))
	}
}

// tagKeys lists the TOML keys of a struct type by reflection, independently
// of knownKeys.
func tagKeys(t reflect.Type, prefix string) map[string]bool {
	out := map[string]bool{}
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[Duration]() {
		return out
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		key := strings.TrimPrefix(prefix+"."+tag, ".")
		out[key] = true
		for k := range tagKeys(f.Type, key) {
			out[k] = true
		}
	}
	return out
}

// TestKnownKeys: the keys that are not reported as unknown are the keys of
// Config, found by reflection independently of knownKeys.
func TestKnownKeys(t *testing.T) {
	if got, want := knownKeys(), tagKeys(reflect.TypeFor[Config](), ""); !reflect.DeepEqual(got, want) {
		t.Errorf("knownKeys() = %v, want %v", got, want)
	}
}
