package main

import (
	"context"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/storage"
)

// openStore opens the database the configuration names, SQLite's file or
// PostgreSQL's database ([storage] driver), as opts says (mode, logger,
// clock). Every command and serve open their database here.
func openStore(ctx context.Context, cfg *config.Config, opts storage.Options) (*storage.Store, error) {
	return openSettings(ctx, cfg.StorageSettings(), opts)
}

// openSettings opens the database st names.
func openSettings(ctx context.Context, st config.StorageSettings, opts storage.Options) (*storage.Store, error) {
	if st.Driver == config.DriverPostgres {
		opts.Driver, opts.DSN = storage.EnginePostgres, st.DSN.Value()
		return storage.Open(ctx, "", opts)
	}
	opts.Driver = storage.EngineSQLite
	return storage.Open(ctx, st.Path, opts)
}
