package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gmailtls/gmailtls/internal/editdist"
)

// The storage drivers of [storage] driver.
const (
	DriverSQLite   = "sqlite"   // one SQLite file (storage.path), the default
	DriverPostgres = "postgres" // a PostgreSQL database (storage.dsn_env / dsn_file)
)

// StorageSettings is what opening the database needs: the engine and its
// file or connection string, resolved from [storage].
type StorageSettings struct {
	Driver string // DriverSQLite or DriverPostgres
	Path   string // SQLite: the database file, resolved against the config's folder
	DSN    Secret // PostgreSQL: the connection string; never logged
}

// StorageSettings returns the database the configuration names: for
// SQLite its resolved path (StoragePath), for PostgreSQL the connection
// string resolved from dsn_env or dsn_file.
func (c *Config) StorageSettings() StorageSettings {
	if c.Storage.Driver == DriverPostgres {
		return StorageSettings{Driver: DriverPostgres, DSN: c.Storage.DSN}
	}
	return StorageSettings{Driver: DriverSQLite, Path: c.StoragePath()}
}

// Display names the database for messages and logs without revealing a
// secret: the SQLite path, or "postgres://user@host:port/dbname" without
// the password and parameters of the connection string.
func (s StorageSettings) Display() string {
	if s.Driver == DriverPostgres {
		return DisplayDSN(s.DSN.Value())
	}
	return s.Path
}

// DisplayDSN shows a PostgreSQL connection string (a postgres:// URL or a
// "host=... dbname=..." list) as "postgres://user@host:port/dbname":
// without password or parameters, so that it can be printed and logged.
// What it cannot read is shown as "postgres://(unreadable connection
// string)", never as written.
func DisplayDSN(dsn string) string {
	user, host, db, ok := dsnParts(dsn)
	if !ok {
		return "postgres://(unreadable connection string)"
	}
	s := "postgres://"
	if user != "" {
		s += user + "@"
	}
	return s + host + "/" + db
}

// dsnParts reads the user, host[:port] and database name of a connection
// string. Either form may leave any of them out (libpq's defaults apply).
func dsnParts(dsn string) (user, host, db string, ok bool) {
	dsn = strings.TrimSpace(dsn)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil || u.Opaque != "" {
			return "", "", "", false
		}
		return u.User.Username(), u.Host, strings.TrimPrefix(u.Path, "/"), true
	}
	kv, ok := keywordValues(dsn)
	if !ok || len(kv) == 0 {
		return "", "", "", false
	}
	host = kv["host"]
	if p := kv["port"]; p != "" {
		host += ":" + p
	}
	return kv["user"], host, kv["dbname"], true
}

// keywordValues parses libpq's "key=value key='quoted value'" form.
func keywordValues(s string) (map[string]string, bool) {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return out, true
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, false
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t'\\") {
			return nil, false
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 {
				c := s[0]
				s = s[1:]
				if c == '\\' && len(s) > 0 {
					val.WriteByte(s[0])
					s = s[1:]
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, false
			}
		} else {
			for len(s) > 0 && !strings.ContainsRune(" \t\n\r", rune(s[0])) {
				if s[0] == '\\' && len(s) > 1 {
					s = s[1:]
				}
				val.WriteByte(s[0])
				s = s[1:]
			}
		}
		out[key] = val.String()
	}
}

// storageDriver validates driver, dsn_env and dsn_file. Messages name the
// variable or file, never the connection string.
func (v *validator) storageDriver() {
	s := &v.c.Storage
	switch s.Driver {
	case "", DriverSQLite:
		for _, f := range []struct{ key, val string }{{"dsn_env", s.DSNEnv}, {"dsn_file", s.DSNFile}} {
			if f.val != "" {
				v.add("storage."+f.key, "is only used with driver = \"postgres\": set driver = \"postgres\" to keep the history in PostgreSQL, or remove it")
			}
		}
		if strings.TrimSpace(s.Path) == "" {
			v.add("storage.path", "is empty; name the SQLite database file, such as \"gmailtls.db\"")
		}
	case DriverPostgres:
		switch {
		case s.DSNEnv != "" && s.DSNFile != "":
			v.add("storage.dsn_file", "set dsn_env or dsn_file, not both")
		case v.c.meta != nil && v.c.meta.agent:
			// The agent's own file: the agent has no database.
		case s.DSN == "":
			v.missingSecret("storage.dsn", s.DSNEnv, s.DSNFile, "the PostgreSQL connection string (postgres://user:password@host:5432/dbname)")
		default:
			if _, _, _, ok := dsnParts(s.DSN.Value()); !ok {
				src, k := "the environment variable "+s.DSNEnv, "storage.dsn_env"
				if s.DSNFile != "" {
					src, k = v.c.Resolve(s.DSNFile), "storage.dsn_file"
				}
				v.add(k, "the value of %s is not a PostgreSQL connection string: write a URL such as postgres://user:password@host:5432/dbname, or host=... user=... dbname=...", src)
			}
		}
	default:
		hint := ""
		if d := closestDriver(s.Driver); d != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", d)
		}
		v.add("storage.driver", "%q is not a storage driver%s: use \"sqlite\" (one database file, the default) or \"postgres\" (PostgreSQL, for several serve replicas)", s.Driver, hint)
	}
}

// closestDriver returns the driver a misspelt one most likely means, or "".
func closestDriver(d string) string {
	l := strings.ToLower(strings.TrimSpace(d))
	switch l {
	case "postgresql", "pg", "pgsql", "psql", "pgx":
		return DriverPostgres
	case "sqlite3":
		return DriverSQLite
	}
	best, bestDist := "", 3
	for _, k := range []string{DriverSQLite, DriverPostgres} {
		if n := editdist.Distance(k, l); n < bestDist {
			best, bestDist = k, n
		}
	}
	return best
}
