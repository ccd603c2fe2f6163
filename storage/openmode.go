package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// memoryOrURI reports whether path is not a plain file name (":memory:",
// a "file:" URI): such paths are not checked on disk.
func memoryOrURI(path string) bool {
	return path == ":memory:" || strings.HasPrefix(path, "file:")
}

// checkExists refuses a missing or zero-byte file before SQLite would
// create or initialise it: a typo in the path, or a truncated file, must
// not be reported as a healthy, empty history.
func checkExists(path string) error {
	if memoryOrURI(path) {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("storage: open %s: %w: the file does not exist (check [storage] path and GMAILTLS_STORAGE_PATH; gmailtls serve or \"gmailtls storage init\" creates it)", path, ErrNoDatabase)
	case err != nil:
		return fmt.Errorf("storage: open %s: %w", path, err)
	case fi.IsDir():
		return fmt.Errorf("storage: open %s: %w: it is a folder, not a database file", path, ErrNoDatabase)
	case fi.Size() == 0:
		return fmt.Errorf("storage: open %s: %w: the file is empty (0 bytes); restore a backup (docs/operations.md), or remove it and run \"gmailtls storage init\" to start an empty history", path, ErrNoDatabase)
	}
	return nil
}

// readOnlyPlace reports whether neither the file nor its folder can be
// written by this process, so that a read-only open may treat the file as
// immutable. Root passes every access check, so for root this is false
// and the mode=ro open alone keeps the file unchanged.
func readOnlyPlace(path string) bool {
	if memoryOrURI(path) {
		return false
	}
	const wOK = 2
	if syscall.Access(path, wOK) == nil || syscall.Access(filepath.Dir(path), wOK) == nil {
		return false
	}
	// A -wal file beside it holds commits the main file lacks; immutable
	// would ignore them.
	_, err := os.Stat(path + "-wal")
	return errors.Is(err, fs.ErrNotExist)
}

// checkReadOnly checks, without writing, that a read-only store holds this
// binary's schema.
func (s *Store) checkReadOnly(ctx context.Context) error {
	cur, err := s.dialect.schemaVersion(ctx, s.db)
	if err != nil {
		return s.opErr("open", err)
	}
	want := len(migrationsFor(s.dialect.engine()))
	switch {
	case cur == 0:
		_, err := s.noSchema(ctx)
		return err
	case cur > want:
		return fmt.Errorf("storage: open %s: %w (%s at version %d, this binary knows %d); upgrade gmailtls or restore a backup", s.path, ErrTooNew, s.dialect.noun(), cur, want)
	case cur < want:
		return fmt.Errorf("storage: open %s: %w (%s at version %d, this binary needs %d); a read-only command never migrates: run gmailtls serve or \"gmailtls storage init\" on it once with write access, or use the gmailtls that wrote it", s.path, ErrNeedsMigration, s.dialect.noun(), cur, want)
	}
	return nil
}

// noSchema is the error for a database at schema version 0: either one
// that holds no tables at all, or one whose tables are not ours (or whose
// version was lost). Neither is migrated afresh. It returns the number of
// tables too: a fresh database (0) may be created.
func (s *Store) noSchema(ctx context.Context) (int, error) {
	tables, err := s.dialect.tables(ctx, s.db)
	if err != nil {
		return -1, s.opErr("open", err)
	}
	return tables, s.dialect.noSchema(s.path, tables)
}
