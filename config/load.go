package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/internal/editdist"
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// meta is what a Config remembers of where it came from.
type meta struct {
	file string            // name for messages
	keys *keyIndex         // where each key is written
	env  map[string]string // key → environment variable that set it
	// explicit holds the keys written in the file, with array indexes
	// ("slack.bot_token_env", "relay[1].timeout"), and their parents
	// ("relay[1]", "relay").
	explicit map[string]bool
	// secretErrs records secrets that could not be read, by key
	// ("relay[1].secret_file", "slack.bot_token_file").
	secretErrs map[string]error
	// agent is set by LoadAgent: the [agent] table and its secret are
	// required.
	agent bool
	// relaySecretsLater is set by LoadWithoutSecrets: a missing agent
	// relay secret is not a problem of the file; RequireRelaySecrets
	// checks it where a command talks to agents.
	relaySecretsLater bool
}

// Default returns a Config with every default filled in: the configuration
// used when no file is given. Its secrets are not resolved; to get the
// defaults with environment overrides and secrets, Parse an empty input:
// Parse(nil, "", dir, getenv).
func Default() *Config {
	return &Config{
		Target: Target{
			Domain:      "gmail.com",
			Timeout:     Duration{20 * time.Second},
			Family:      "any",
			Concurrency: 64, // probe.DefaultConcurrency
		},
		Storage:   Storage{Driver: DriverSQLite, Path: "gmailtls.db"},
		Retention: Retention{Raw: Duration{30 * day}, Rollup: Duration{400 * day}},
		Relays:    []Relay{{Name: "local", Kind: "local", Timeout: Duration{60 * time.Second}}},
		Slack: Slack{
			Mode:             "socket",
			BotTokenEnv:      "SLACK_BOT_TOKEN",
			AppTokenEnv:      "SLACK_APP_TOKEN",
			SigningSecretEnv: "SLACK_SIGNING_SECRET",
			Listen:           "127.0.0.1:3000",
			Command:          "/gmailtls",
			ResponseURLHosts: []string{"hooks.slack.com"},
		},
		Probing: Probing{Schedule: "@every 5m", UserBurst: 6, UserInterval: Duration{20 * time.Second}, RelayBurst: 3, RelayInterval: Duration{10 * time.Second}},
		Alerts:  Alerts{RemindEvery: Duration{time.Hour}, FlapLimit: 4},
		Escalation: Escalation{
			Consecutive:  3,
			MOfK:         []int{3, 5},
			Window:       Duration{15 * time.Minute},
			WindowCount:  3,
			RecoverAfter: 2,
			LogFailures:  10,
		},
		HTTP:  HTTP{Listen: "127.0.0.1:9425"},
		Log:   Log{Format: "text", Level: "info"},
		Agent: defaultAgent(),
	}
}

func defaultRelay() Relay { return Relay{Kind: "local", Timeout: Duration{60 * time.Second}} }

func defaultReport() Report { return Report{Window: Duration{24 * time.Hour}} }

func defaultAgent() *Agent {
	return &Agent{
		Listen:    "127.0.0.1:9426",
		SecretEnv: "GMAILTLS_AGENT_SECRET",
		MaxProbes: 4,
		MTAStack:  true,
		Postqueue: "postqueue",
	}
}

// Load reads path, decodes it strictly, applies defaults and environment
// overrides, resolves secrets and validates. Relative paths in the file
// resolve against the file's folder (cfg.Dir). A nil getenv means
// os.Getenv. Every error wraps ErrInvalid; several problems come joined
// (see Problems).
func Load(path string, getenv func(string) string) (*Config, error) {
	return load(path, getenv, false, false)
}

// LoadWithoutSecrets is Load for the commands that only read the database
// (status, history, relays, backup) or that check the secrets they need
// themselves: an agent relay's shared secret that is not in the
// environment (or whose file is unreadable) is not an error here. Every
// other key is validated as by Load. Call [Config.RequireRelaySecrets]
// before talking to an agent.
func LoadWithoutSecrets(path string, getenv func(string) string) (*Config, error) {
	return load(path, getenv, false, true)
}

// LoadAgent is Load for the agent's own file (gmailtls agent --config
// agent.toml): it needs the [agent] table and the agent's secret, and uses
// [target]; [slack], [[relay]] and the rest are not required there.
func LoadAgent(path string, getenv func(string) string) (*Config, error) {
	return load(path, getenv, true, false)
}

func load(path string, getenv func(string) string, agent, secretsLater bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := "cannot read the configuration file: " + errText(err)
		if errors.Is(err, os.ErrNotExist) {
			msg = "no such file; give the configuration with --config, or copy config.toml.example to start from"
		}
		return nil, &Problem{File: path, Msg: msg, Err: err}
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return parse(data, path, dir, getenv, agent, secretsLater)
}

// Parse does what Load does, from bytes: dir is the folder relative paths
// resolve against (cfg.Dir), name is the file name used in messages.
func Parse(data []byte, name, dir string, getenv func(string) string) (*Config, error) {
	return parse(data, name, dir, getenv, false, false)
}

func parse(data []byte, name, dir string, getenv func(string) string, agent, secretsLater bool) (cfg *Config, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	defer func() {
		// A decoder bug on odd input must give an error, never a crash.
		if r := recover(); r != nil {
			cfg = nil
			err = &Problem{File: name, Msg: fmt.Sprintf("cannot decode the file (decoder failure: %v)", r)}
		}
	}()
	if p := checkText(data, name); p != nil {
		return nil, p
	}
	m := &meta{
		file:       name,
		env:        map[string]string{},
		explicit:   map[string]bool{},
		secretErrs: map[string]error{},
		agent:      agent,

		relaySecretsLater: secretsLater,
	}
	// The text must be TOML before its keys are looked at: decoding it
	// without a target reports syntax errors and keys defined twice.
	var generic map[string]any
	if err := toml.Unmarshal(data, &generic); err != nil {
		return nil, m.syntaxProblem(err)
	}
	if m.keys, err = indexKeys(data); err != nil {
		return nil, m.syntaxProblem(err)
	}
	for k := range m.keys.lines {
		m.explicit[k] = true
	}

	cfg, probs, failed, ok := m.decode(data, dir)
	if !ok {
		return nil, errors.Join(byLine(probs)...)
	}
	if agent && !m.explicit["agent"] {
		probs = append(probs, &Problem{File: name, Msg: "no [agent] table: this is not an agent configuration; " +
			"an agent file needs [agent] (listen, tls_cert, tls_key, secret_env) beside its [target]"})
	}
	if m.explicit["relay"] && !failed["relay"] {
		for i := range cfg.Relays {
			m.itemDefaults(&cfg.Relays[i], defaultRelay(), fmt.Sprintf("relay[%d]", i), failed)
		}
	}
	if m.explicit["report"] && !failed["report"] {
		for i := range cfg.Reports {
			m.itemDefaults(&cfg.Reports[i], defaultReport(), fmt.Sprintf("report[%d]", i), failed)
		}
	}
	cfg.applyItemDefaults()
	cfg.applyEnv(getenv)
	cfg.normalize()
	cfg.resolveSecrets(getenv)
	if err := cfg.Validate(); err != nil {
		for _, p := range Problems(err) {
			// A field that did not decode kept its default; what
			// Validate says of it would only repeat the decode error.
			var pp *Problem
			if errors.As(p, &pp) && m.env[pp.Key] == "" && underFailed(failed, pp.Key) {
				continue
			}
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		return nil, errors.Join(byLine(probs)...)
	}
	return cfg, nil
}

// decode decodes data strictly over the defaults. A value of the wrong type
// costs only its own key-value (or table): it is reported with its line and
// cut from the text, so that its field keeps its default while the rest is
// still decoded, checked for unknown keys and validated, and one run lists
// every problem. It returns the decoded Config, the problems, the keys that
// did not decode, and false when the decoder failed in a way that leaves
// nothing worth validating.
func (m *meta) decode(data []byte, dir string) (*Config, []error, map[string]bool, bool) {
	ix := m.keys
	text := bytes.Clone(data)
	failed := map[string]bool{}
	type found struct {
		key, msg string
		line     int
	}
	var bad []found
	drop := func(e int, key, msg string, line int) {
		bad = append(bad, found{key, msg, line})
		failed[key] = true
		failed[ix.exprs[e].key] = true
		if !ix.exprs[e].cut {
			ix.cut(text, e)
		}
	}
	// The decoder stops at the first value of the wrong type, gives no
	// position for a number where a duration belongs, and takes [relay]
	// for the last [[relay]]: values whose kind does not fit their field
	// are found here first. Every misfit of an expression is reported
	// (both fields of an inline table), none below another one.
	own := make([]bool, len(ix.exprs)) // cut for a misfit of its own
	misfits := map[string]bool{}
	for i := range ix.keys {
		w := &ix.keys[i]
		path := w.path
		if w.kind == unstable.ArrayTable { // [[relay]] is relay[n]: check relay
			path = path[:len(path)-1]
		}
		key := render(path)
		if ix.exprs[w.expr].cut && !own[w.expr] || underFailed(misfits, key) {
			continue
		}
		if msg := misfit(path, w); msg != "" {
			misfits[key] = true
			own[w.expr] = true
			drop(w.expr, key, msg, w.line)
		}
	}
	// What remains are values of the right kind the decoder still refuses
	// (a duration it cannot parse, a number too large): each stops the
	// decoder, so each is cut in turn until the text decodes.
	var cfg *Config
	var strict *toml.StrictMissingError
	ok := true
	for {
		cfg = Default()
		cfg.Dir = dir
		cfg.meta = m
		err := toml.NewDecoder(bytes.NewReader(text)).DisallowUnknownFields().Decode(cfg)
		if err == nil || errors.As(err, &strict) {
			break
		}
		var de *toml.DecodeError
		if !errors.As(err, &de) {
			bad = append(bad, found{msg: "cannot decode the file: " + strings.TrimPrefix(err.Error(), "toml: ")})
			ok = false
			break
		}
		row, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		e := ix.exprAt(row)
		if e < 0 || ix.exprs[e].cut { // nothing left to cut: stop rather than loop
			bad = append(bad, found{msg: msg, line: row})
			ok = false
			break
		}
		key := strings.Join(de.Key(), ".")
		if w := ix.at(row, col); w != nil {
			key = w.key
		}
		drop(e, key, msg, row)
	}
	var probs []error
	for _, f := range bad {
		p := &Problem{File: m.file, Line: f.line, Msg: f.msg}
		if f.key != "" {
			p = cfg.problem(f.key, "%s", f.msg)
			p.Line = f.line
		}
		probs = append(probs, p)
	}
	if ok {
		probs = append(probs, m.unknownKeys(strict)...)
	}
	return cfg, probs, failed, ok
}

// itemDefaults gives each field of an array item (relay[1]) that the file
// did not set, or set with a value that did not decode, its default: the
// decoder starts every item from zero values.
func (m *meta) itemDefaults(item, def any, key string, failed map[string]bool) {
	v, d := reflect.ValueOf(item).Elem(), reflect.ValueOf(def)
	for i := range v.NumField() {
		if tag := tagName(v.Type().Field(i)); tag != "" {
			if k := key + "." + tag; !m.explicit[k] || underFailed(failed, k) {
				v.Field(i).Set(d.Field(i))
			}
		}
	}
}

// tagName is the TOML key of a struct field, or "" for a field that has none.
func tagName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if !f.IsExported() || tag == "-" {
		return ""
	}
	return tag
}

// underFailed reports whether key is a key that failed to decode or lies
// below one ("relay[1].name" under "relay[1]", "target.mx[2]" under
// "target.mx").
func underFailed(failed map[string]bool, key string) bool {
	for k := key; k != ""; {
		if failed[k] {
			return true
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			return false
		}
		k = k[:i]
	}
	return false
}

// byLine orders problems by line, keeping the order of those on one line;
// problems of the whole file (line 0) come first.
func byLine(probs []error) []error {
	line := func(e error) int {
		var p *Problem
		if errors.As(e, &p) {
			return p.Line
		}
		return 0
	}
	slices.SortStableFunc(probs, func(a, b error) int { return cmp.Compare(line(a), line(b)) })
	return probs
}

// checkText rejects input that is not text before the TOML parser sees it,
// so that a binary file (a database given by mistake) gets a clear message.
func checkText(data []byte, name string) *Problem {
	bad := bytes.IndexByte(data, 0)
	if bad < 0 && !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				bad = i
				break
			}
			i += n
		}
	}
	if bad < 0 {
		return nil
	}
	if bytes.HasPrefix(data, []byte("SQLite format 3\x00")) {
		return &Problem{File: name, Msg: "this is an SQLite database, not a configuration file; " +
			"give the TOML configuration (see config.toml.example)"}
	}
	line := 1 + bytes.Count(data[:bad], []byte("\n"))
	return &Problem{File: name, Line: line, Msg: fmt.Sprintf("not a TOML text file: binary or non-UTF-8 data at byte %d; "+
		"a configuration is UTF-8 text (see config.toml.example)", bad)}
}

// syntaxProblem turns the decoder's error on text that is not valid TOML
// into a Problem with line and column.
func (m *meta) syntaxProblem(err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return &Problem{
			File: m.file, Line: line, Col: col,
			Msg: "TOML syntax error: " + strings.TrimPrefix(de.Error(), "toml: "), Err: err,
		}
	}
	return &Problem{File: m.file, Msg: "cannot decode the file: " + strings.TrimPrefix(err.Error(), "toml: "), Err: err}
}

var durationType = reflect.TypeFor[Duration]()

// fieldType returns the Go type that the key at path decodes into, or nil
// when Config has no such key.
func fieldType(path []step) reflect.Type {
	t := reflect.TypeFor[Config]()
	for _, s := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case s.index >= 0 && t.Kind() == reflect.Slice:
			t = t.Elem()
		case s.index < 0 && t.Kind() == reflect.Struct && t != durationType:
			f, ok := fieldByTag(t, s.name)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	return t
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if tagName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// misfit says, for an operator, why the value w does not fit the field at
// path, or returns "" when it fits (or there is no such field).
func misfit(path []step, w *written) string {
	t := fieldType(path)
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	got := kindName(w.kind)
	if t == durationType {
		// The decoder hands a number or a boolean to UnmarshalText as
		// it is written: 0 is a duration, 20 is not.
		if _, err := ParseDuration(w.text); w.kind == unstable.String || isScalar(w.kind) && err == nil {
			return ""
		}
		switch w.kind {
		case unstable.Integer:
			return fmt.Sprintf("%s has no unit; write a duration in quotes, such as \"%[1]ss\", \"%[1]sm\" or \"%[1]sd\"", w.text)
		case unstable.Float:
			return fmt.Sprintf("%s has no unit; write a duration in quotes, such as \"%[1]ss\"", w.text)
		}
		return "expected a duration in quotes such as \"20s\", got " + got
	}
	var want string
	var fits bool
	hint := ""
	switch t.Kind() {
	case reflect.String:
		want, fits = "a string", w.kind == unstable.String
		if isScalar(w.kind) {
			hint = " (put the value in double quotes)"
		}
	case reflect.Int:
		want, fits = "an integer", w.kind == unstable.Integer
	case reflect.Bool:
		want, fits = "true or false", w.kind == unstable.Bool
	case reflect.Slice:
		items := t.Elem().Kind() == reflect.Struct
		want, fits = "an array", w.kind == unstable.Array || items && w.kind == unstable.ArrayTable
		if items && w.kind == unstable.Table {
			hint = fmt.Sprintf(" (start each item with [[%s]], in double brackets)", plain(path))
		}
	case reflect.Struct:
		want, fits = "a table", w.kind == unstable.Table || w.kind == unstable.InlineTable
		if w.kind == unstable.ArrayTable {
			hint = fmt.Sprintf(" (write [%s], in single brackets)", plain(path))
		}
	default:
		return ""
	}
	if fits {
		return ""
	}
	return "expected " + want + ", got " + got + hint
}

// isScalar reports whether a value of kind k is a number or a boolean,
// which the decoder gives to UnmarshalText as written.
func isScalar(k unstable.Kind) bool {
	return k == unstable.Integer || k == unstable.Float || k == unstable.Bool
}

// kindName names a kind of TOML value for an operator.
func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a number with a fraction"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.Table, unstable.InlineTable:
		return "a table"
	case unstable.ArrayTable:
		return "an array of tables"
	case unstable.DateTime, unstable.LocalDateTime, unstable.LocalDate, unstable.LocalTime:
		return "a date/time"
	}
	return k.String()
}

// unknownKeys reports every key the Config has no place for, with its line:
// those the strict decoder found, and those it matched only by ignoring
// case ("Domain" for domain), which are not the documented spelling. Keys
// below a reported key are not reported again.
func (m *meta) unknownKeys(strict *toml.StrictMissingError) []error {
	type unknown struct {
		key, plain string
		line       int
	}
	var list []unknown
	if strict != nil {
		for i := range strict.Errors {
			e := &strict.Errors[i]
			row, col := e.Position()
			u := unknown{strings.Join(e.Key(), "."), strings.Join(e.Key(), "."), row}
			if w := m.keys.at(row, col); w != nil {
				u.key, u.plain = w.key, plain(w.path)
			}
			list = append(list, u)
		}
	}
	known := knownKeys()
	for _, w := range m.keys.keys {
		last := w.path[len(w.path)-1]
		if last.index >= 0 || m.keys.exprs[w.expr].cut {
			continue
		}
		p := plain(w.path)
		parent := plain(w.path[:len(w.path)-1])
		if !known[p] && (parent == "" || known[parent]) {
			list = append(list, unknown{w.key, p, w.line})
		}
	}
	slices.SortStableFunc(list, func(a, b unknown) int { return cmp.Compare(a.line, b.line) })
	var out []error
	var reported []string
	for _, u := range list {
		if slices.ContainsFunc(reported, func(r string) bool {
			return u.key == r || strings.HasPrefix(u.key, r+".") || strings.HasPrefix(u.key, r+"[")
		}) {
			continue
		}
		reported = append(reported, u.key)
		msg := "unknown key " + u.plain
		if s := suggest(known, u.plain); s != "" {
			msg += " (did you mean " + s + "?)"
		}
		out = append(out, &Problem{File: m.file, Line: u.line, Key: u.key, Msg: msg})
	}
	return out
}

// knownKeys is the set of keys Config can hold, without array indexes:
// "target", "target.domain", "relay", "relay.name", ...
func knownKeys() map[string]bool {
	set := map[string]bool{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType {
			return
		}
		for f := range t.Fields() {
			tag := tagName(f)
			if tag == "" {
				continue
			}
			k := tag
			if prefix != "" {
				k = prefix + "." + tag
			}
			set[k] = true
			walk(k, f.Type)
		}
	}
	walk("", reflect.TypeFor[Config]())
	return set
}

// suggest returns the known key closest to an unknown one, if any is close.
func suggest(known map[string]bool, plain string) string {
	best, bestDist := "", 3
	parent := ""
	if i := strings.LastIndexByte(plain, '.'); i >= 0 {
		parent = plain[:i]
	}
	for k := range known {
		kp := ""
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			kp = k[:i]
		}
		if kp != parent && !strings.EqualFold(k, plain) {
			continue
		}
		if strings.EqualFold(k, plain) {
			return k[strings.LastIndexByte(k, '.')+1:]
		}
		if d := editdist.Distance(k, plain); d < bestDist || d == bestDist && d < 3 && k < best {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return best[strings.LastIndexByte(best, '.')+1:]
}

// applyItemDefaults fills what depends on other keys: the implicit relay,
// and a *_file that replaces the default *_env.
func (c *Config) applyItemDefaults() {
	m := c.meta
	if len(c.Relays) == 0 {
		c.Relays = []Relay{{Name: "local", Kind: "local", Timeout: Duration{60 * time.Second}}}
	}
	// A file given in place of a default environment variable wins; both
	// written explicitly is an error that Validate reports.
	fileWins := func(envKey string, env *string, file string) {
		if file != "" && !m.explicit[envKey] {
			*env = ""
		}
	}
	fileWins("slack.bot_token_env", &c.Slack.BotTokenEnv, c.Slack.BotTokenFile)
	fileWins("slack.app_token_env", &c.Slack.AppTokenEnv, c.Slack.AppTokenFile)
	fileWins("slack.signing_secret_env", &c.Slack.SigningSecretEnv, c.Slack.SigningSecretFile)
	if c.Agent != nil {
		fileWins("agent.secret_env", &c.Agent.SecretEnv, c.Agent.SecretFile)
	}
	if c.Storage.Driver == DriverPostgres && c.Storage.DSNEnv == "" && c.Storage.DSNFile == "" {
		c.Storage.DSNEnv = EnvPostgresDSN
	}
}

// Environment variables that override keys of the file.
const (
	EnvStoragePath  = "GMAILTLS_STORAGE_PATH"  // storage.path (relative: to the working directory)
	EnvSlackMode    = "GMAILTLS_SLACK_MODE"    // slack.mode
	EnvSlackAPIURL  = "GMAILTLS_SLACK_API_URL" // slack.api_url
	EnvHTTPListen   = "GMAILTLS_HTTP_LISTEN"   // http.listen
	EnvLogLevel     = "GMAILTLS_LOG_LEVEL"     // log.level
	EnvLogFormat    = "GMAILTLS_LOG_FORMAT"    // log.format
	EnvTargetDomain = "GMAILTLS_TARGET_DOMAIN" // target.domain
)

// EnvPostgresDSN is the environment variable the PostgreSQL connection
// string is read from when [storage] driver is "postgres" and neither
// dsn_env nor dsn_file is set.
const EnvPostgresDSN = "GMAILTLS_POSTGRES_DSN"

// applyEnv applies the environment overrides; an empty variable is unset.
func (c *Config) applyEnv(getenv func(string) string) {
	set := func(name, key string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
			c.meta.env[key] = name
		}
	}
	set(EnvStoragePath, "storage.path", &c.Storage.Path)
	if v := getenv(EnvStoragePath); v != "" && !filepath.IsAbs(v) && v != ":memory:" && !strings.HasPrefix(v, "file:") {
		if abs, err := filepath.Abs(v); err == nil {
			c.Storage.Path = abs
		}
	}
	set(EnvSlackMode, "slack.mode", &c.Slack.Mode)
	set(EnvSlackAPIURL, "slack.api_url", &c.Slack.APIURL)
	set(EnvHTTPListen, "http.listen", &c.HTTP.Listen)
	set(EnvLogLevel, "log.level", &c.Log.Level)
	set(EnvLogFormat, "log.format", &c.Log.Format)
	set(EnvTargetDomain, "target.domain", &c.Target.Domain)
}

// normalize fixes harmless spellings: slack.api_url gets the trailing "/"
// that slack-go needs, log.level and log.format are lower-cased
// ("warning" is "warn").
func (c *Config) normalize() {
	if u := c.Slack.APIURL; u != "" && !strings.HasSuffix(u, "/") {
		c.Slack.APIURL = u + "/"
	}
	c.Log.Level = strings.ToLower(c.Log.Level)
	if c.Log.Level == "warning" {
		c.Log.Level = "warn"
	}
	c.Log.Format = strings.ToLower(c.Log.Format)
}

// resolveSecrets reads every secret from its environment variable or file.
// Read failures are kept for Validate (relays, agent) and RequireSlack.
func (c *Config) resolveSecrets(getenv func(string) string) {
	read := func(key, env, file string) Secret {
		switch {
		case file != "":
			data, err := os.ReadFile(c.Resolve(file))
			if err != nil {
				c.meta.secretErrs[key+"_file"] = err
				return ""
			}
			return Secret(strings.TrimSpace(string(data)))
		case env != "":
			return Secret(strings.TrimSpace(getenv(env)))
		}
		return ""
	}
	for i := range c.Relays {
		r := &c.Relays[i]
		if r.Kind == "agent" {
			r.Secret = read(fmt.Sprintf("relay[%d].secret", i), r.SecretEnv, r.SecretFile)
		}
	}
	// The agent's own file has no use for the database.
	if c.Storage.Driver == DriverPostgres && !c.meta.agent {
		c.Storage.DSN = read("storage.dsn", c.Storage.DSNEnv, c.Storage.DSNFile)
	}
	c.Slack.BotToken = read("slack.bot_token", c.Slack.BotTokenEnv, c.Slack.BotTokenFile)
	c.Slack.AppToken = read("slack.app_token", c.Slack.AppTokenEnv, c.Slack.AppTokenFile)
	c.Slack.SigningSecret = read("slack.signing_secret", c.Slack.SigningSecretEnv, c.Slack.SigningSecretFile)
	if c.Agent != nil && c.meta.agent {
		c.Agent.Secret = read("agent.secret", c.Agent.SecretEnv, c.Agent.SecretFile)
		c.Agent.PreviousSecret = read("agent.previous_secret", c.Agent.PreviousSecretEnv, c.Agent.PreviousSecretFile)
	}
}

// errText is an error's text without the path a *PathError repeats.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Resolve resolves a path written in the configuration: relative paths are
// relative to the configuration file's folder (c.Dir). "" stays "".
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// StoragePath returns the database path resolved against c.Dir; ":memory:"
// and "file:" URIs are returned as they are.
func (c *Config) StoragePath() string {
	p := c.Storage.Path
	if p == ":memory:" || strings.HasPrefix(p, "file:") {
		return p
	}
	return c.Resolve(p)
}

// RelayByName returns the relay with that name.
func (c *Config) RelayByName(name string) (Relay, bool) {
	for _, r := range c.Relays {
		if r.Name == name {
			return r, true
		}
	}
	return Relay{}, false
}
