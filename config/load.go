package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/gmailtls/gmailtls/internal/editdist"
)

// meta is what a Config remembers of where it came from.
type meta struct {
	file string            // name for messages
	loc  *locator          // key → line
	env  map[string]string // key → environment variable that set it
	// explicit holds the keys written in the file, without array indexes
	// for sections and with them for list items ("slack.bot_token_env",
	// "relay[1].timeout").
	explicit map[string]bool
	// secretErrs records secrets that could not be read, by key
	// ("relay[1].secret_file", "slack.bot_token_file").
	secretErrs map[string]error
	// agent is set by LoadAgent: the [agent] table and its secret are
	// required.
	agent bool
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
		Storage:   Storage{Path: "gmailtls.db"},
		Retention: Retention{Raw: Duration{30 * day}, Rollup: Duration{400 * day}},
		Relays:    []Relay{{Name: "local", Kind: "local", Timeout: Duration{60 * time.Second}}},
		Slack: Slack{
			Mode:             "socket",
			BotTokenEnv:      "SLACK_BOT_TOKEN",
			AppTokenEnv:      "SLACK_APP_TOKEN",
			SigningSecretEnv: "SLACK_SIGNING_SECRET",
			Listen:           "127.0.0.1:3000",
			Command:          "/gmailtls",
		},
		Probing: Probing{Schedule: "@every 5m"},
		Alerts:  Alerts{RemindEvery: Duration{time.Hour}, FlapLimit: 4},
		Escalation: Escalation{
			Consecutive:  3,
			MOfK:         []int{3, 5},
			Window:       Duration{15 * time.Minute},
			WindowCount:  3,
			RecoverAfter: 2,
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
	return load(path, getenv, false)
}

// LoadAgent is Load for the agent's own file (gmailtls agent --config
// agent.toml): it needs the [agent] table and the agent's secret, and uses
// [target]; [slack], [[relay]] and the rest are not required there.
func LoadAgent(path string, getenv func(string) string) (*Config, error) {
	return load(path, getenv, true)
}

func load(path string, getenv func(string) string, agent bool) (*Config, error) {
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
	return parse(data, path, dir, getenv, agent)
}

// Parse does what Load does, from bytes: dir is the folder relative paths
// resolve against (cfg.Dir), name is the file name used in messages.
func Parse(data []byte, name, dir string, getenv func(string) string) (*Config, error) {
	return parse(data, name, dir, getenv, false)
}

// rawConfig mirrors Config with every section left undecoded, so that each
// section (and each list item) decodes on its own and reports its own type
// errors. A test keeps its tags equal to Config's.
type rawConfig struct {
	Target     toml.Primitive   `toml:"target"`
	Storage    toml.Primitive   `toml:"storage"`
	Retention  toml.Primitive   `toml:"retention"`
	Relays     []toml.Primitive `toml:"relay"`
	Slack      toml.Primitive   `toml:"slack"`
	Access     toml.Primitive   `toml:"access"`
	Probing    toml.Primitive   `toml:"probing"`
	Reports    []toml.Primitive `toml:"report"`
	Alerts     toml.Primitive   `toml:"alerts"`
	Escalation toml.Primitive   `toml:"escalation"`
	HTTP       toml.Primitive   `toml:"http"`
	Log        toml.Primitive   `toml:"log"`
	Agent      toml.Primitive   `toml:"agent"`
}

func parse(data []byte, name, dir string, getenv func(string) string, agent bool) (cfg *Config, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	defer func() {
		// The TOML decoder has panicked on odd input before; a bad file
		// must give an error, never a crash.
		if r := recover(); r != nil {
			cfg = nil
			err = &Problem{File: name, Msg: fmt.Sprintf("cannot decode the file (decoder failure: %v)", r)}
		}
	}()
	if p := checkText(data, name); p != nil {
		return nil, p
	}
	cfg = Default()
	cfg.Dir = dir
	m := &meta{
		file:       name,
		env:        map[string]string{},
		explicit:   map[string]bool{},
		secretErrs: map[string]error{},
		agent:      agent,
	}
	cfg.meta = m

	m.loc = locate(string(data))
	var raw rawConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, m.syntaxProblem(cfg, err)
	}

	// Decode each section over its defaults, and each list item over the
	// item defaults. A value of the wrong type costs only that value: it is
	// reported with its line, the field keeps its default, and everything
	// else is still decoded, checked for unknown keys and validated, so that
	// one run lists every problem.
	var probs []error
	failed := map[string]bool{} // indexed keys that did not decode
	fail := func(err error, section string, index int) {
		p := m.decodeProblem(cfg, err, section, index)
		var pp *Problem
		if errors.As(p, &pp) && pp.Key != "" {
			failed[pp.Key] = true
		} else if index >= 0 {
			failed[fmt.Sprintf("%s[%d]", section, index)] = true
		} else {
			failed[section] = true
		}
		probs = append(probs, p)
	}
	section := func(key string, prim toml.Primitive, dst any) {
		if !md.IsDefined(key) {
			return
		}
		for _, err := range decodeFields(&md, prim, dst) {
			fail(err, key, -1)
		}
	}
	section("target", raw.Target, &cfg.Target)
	section("storage", raw.Storage, &cfg.Storage)
	section("retention", raw.Retention, &cfg.Retention)
	section("slack", raw.Slack, &cfg.Slack)
	section("access", raw.Access, &cfg.Access)
	section("probing", raw.Probing, &cfg.Probing)
	section("alerts", raw.Alerts, &cfg.Alerts)
	section("escalation", raw.Escalation, &cfg.Escalation)
	section("http", raw.HTTP, &cfg.HTTP)
	section("log", raw.Log, &cfg.Log)
	section("agent", raw.Agent, cfg.Agent)
	if md.IsDefined("relay") {
		cfg.Relays = make([]Relay, len(raw.Relays))
		for i, prim := range raw.Relays {
			cfg.Relays[i] = defaultRelay()
			for _, err := range decodeFields(&md, prim, &cfg.Relays[i]) {
				fail(err, "relay", i)
			}
		}
	}
	if md.IsDefined("report") {
		cfg.Reports = make([]Report, len(raw.Reports))
		for i, prim := range raw.Reports {
			cfg.Reports[i] = defaultReport()
			for _, err := range decodeFields(&md, prim, &cfg.Reports[i]) {
				fail(err, "report", i)
			}
		}
	}
	probs = append(probs, m.unknownKeys(&md, failed)...)
	for _, k := range md.Keys() {
		m.explicit[k.String()] = true
	}
	for _, kp := range m.loc.keys {
		m.explicit[kp.indexed] = true
	}

	if agent && !md.IsDefined("agent") {
		probs = append(probs, &Problem{File: name, Msg: "no [agent] table: this is not an agent configuration; " +
			"an agent file needs [agent] (listen, tls_cert, tls_key, secret_env) beside its [target]"})
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

// decodeFields decodes prim into dst, a pointer to a section struct that
// holds its defaults. When that fails, it decodes the section again field by
// field, so that a bad value costs only that field: it keeps its default
// and its error is returned, while every other field is decoded (and its
// key marked decoded for the unknown-key check). A value that is not a
// table at all gives one error.
func decodeFields(md *toml.MetaData, prim toml.Primitive, dst any) []error {
	rv := reflect.ValueOf(dst).Elem()
	saved := reflect.New(rv.Type()).Elem()
	saved.Set(rv)
	err := md.PrimitiveDecode(prim, dst)
	if err == nil {
		return nil
	}
	rv.Set(saved) // undo what the failed decode wrote
	var table struct{}
	if err := md.PrimitiveDecode(prim, &table); err != nil {
		return []error{err}
	}
	var errs []error
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := strings.Split(f.Tag.Get("toml"), ",")[0]; !f.IsExported() || tag == "-" || tag == "" {
			continue
		}
		// A struct of this one field decodes this key and no other.
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		one.Elem().Field(0).Set(clone(rv.Field(i)))
		if err := md.PrimitiveDecode(prim, one.Interface()); err != nil {
			errs = append(errs, err)
			continue
		}
		rv.Field(i).Set(one.Elem().Field(0))
	}
	if len(errs) == 0 {
		// Cannot happen (the whole failed, so a field must); keep the
		// first error rather than lose it.
		errs = append(errs, err)
	}
	return errs
}

// clone copies v so that a decode into the copy cannot write into v's
// backing array (slices are decoded in place when they are long enough).
func clone(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Slice || v.IsNil() {
		return v
	}
	c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
	reflect.Copy(c, v)
	return c
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

// syntaxProblem turns a TOML parse error into a Problem with line and
// column, and a top-level type error ("relay = 5") into one naming the key.
func (m *meta) syntaxProblem(cfg *Config, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Problem{
			File: m.file, Line: pe.Position.Line, Col: pe.Position.Col,
			Msg: "TOML syntax error: " + pe.Message, Err: err,
		}
	}
	if decodeMsg().MatchString(err.Error()) {
		return m.decodeProblem(cfg, err, "", -1)
	}
	return &Problem{File: m.file, Msg: "cannot decode the file: " + strings.TrimPrefix(err.Error(), "toml: "), Err: err}
}

// decodeMsg matches the decoder's non-ParseError errors.
var decodeMsg = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)
})

// decodeProblem turns a type error from decoding section (list item index
// when index ≥ 0) into a Problem naming the key.
func (m *meta) decodeProblem(cfg *Config, err error, section string, index int) error {
	var key, msg string
	var pe toml.ParseError
	if errors.As(err, &pe) {
		key, msg = pe.LastKey, pe.Message
	} else if sm := decodeMsg().FindStringSubmatch(err.Error()); sm != nil {
		key, msg = strings.ReplaceAll(sm[1], `\"`, `"`), sm[2]
	} else {
		key, msg = section, strings.TrimPrefix(err.Error(), "toml: ")
	}
	if key == "" {
		key = section
	}
	if index >= 0 {
		rest := strings.TrimPrefix(key, section)
		key = fmt.Sprintf("%s[%d]%s", section, index, rest)
	}
	return cfg.problem(key, "%s", typeMsg(msg))
}

// typeMsg rewords the decoder's type messages for an operator.
var (
	incompatible = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^incompatible types: TOML value has type (.*); destination has type (.*)$`)
	})
	mismatch = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^type mismatch for .*: expected table but found (.*)$`)
	})
)

func typeMsg(msg string) string {
	if sm := incompatible().FindStringSubmatch(msg); sm != nil {
		want := map[string]string{
			"string":                  "a string",
			"primitive (string-like)": "a string",
			"integer":                 "an integer",
			"float":                   "a number",
			"boolean":                 "true or false",
			"slice":                   "an array",
		}[sm[2]]
		if want == "" {
			want = sm[2]
		}
		hint := ""
		if want == "a string" && (sm[1] == "int64" || sm[1] == "float64" || sm[1] == "bool") {
			hint = " (put the value in double quotes)"
		}
		return fmt.Sprintf("expected %s, got %s%s", want, tomlTypeName(sm[1]), hint)
	}
	if sm := mismatch().FindStringSubmatch(msg); sm != nil {
		return fmt.Sprintf("expected a table, got %s", tomlTypeName(sm[1]))
	}
	return msg
}

func tomlTypeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64":
		return "an integer"
	case "float64":
		return "a number with a fraction"
	case "bool":
		return "a boolean"
	case "[]any", "[]interface {}":
		return "an array"
	case "map[string]any", "map[string]interface {}":
		return "a table"
	case "[]map[string]any", "[]map[string]interface {}":
		return "an array of tables"
	}
	if strings.Contains(goType, "Time") || strings.Contains(goType, "Local") {
		return "a date/time"
	}
	return goType
}

// unknownKeys reports every key the Config has no place for, with its line,
// skipping keys below a value that failed to decode (a table given where a
// string belongs: its keys are undecoded for another reason) and keys below
// an unknown table.
func (m *meta) unknownKeys(md *toml.MetaData, failed map[string]bool) []error {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	// Keys the decoder matched without regard to case ("Domain") are
	// decoded, but they are not the documented spelling.
	known := knownKeys()
	for _, k := range md.Keys() {
		if !undecoded[k.String()] && !known[plainKey(k)] {
			undecoded[k.String()] = true
		}
	}
	if len(undecoded) == 0 {
		return nil
	}
	var out []error
	var reported []string
	seen := map[string]bool{}
	emit := func(plain, indexed string, line int) {
		for _, r := range reported {
			if strings.HasPrefix(indexed, r+".") || strings.HasPrefix(indexed, r+"[") {
				return
			}
		}
		if underFailed(failed, indexed) || underFailed(failed, plain) {
			return
		}
		reported = append(reported, indexed)
		seen[plain] = true
		msg := "unknown key " + plain
		if s := suggest(known, plain); s != "" {
			msg += " (did you mean " + s + "?)"
		}
		out = append(out, &Problem{File: m.file, Line: line, Key: indexed, Msg: msg})
	}
	located := map[string]bool{}
	for _, kp := range m.loc.keys {
		plain := toml.Key(kp.segs).String()
		if undecoded[plain] {
			located[plain] = true
			emit(plain, kp.indexed, kp.line)
		}
	}
	// Anything the locator missed is still reported, without a line.
	for _, k := range md.Undecoded() {
		if plain := k.String(); !located[plain] && !seen[plain] && undecoded[plain] {
			emit(plain, plain, 0)
		}
	}
	return out
}

func plainKey(k toml.Key) string { return strings.Join(k, ".") }

// knownKeys is the set of keys Config can hold, without array indexes:
// "target", "target.domain", "relay", "relay.name", ...
func knownKeys() map[string]bool {
	set := map[string]bool{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeFor[Duration]() {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if !f.IsExported() || tag == "-" || tag == "" {
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
