package monitor

import (
	"os"
	"testing"

	"github.com/gmailtls/gmailtls/internal/pglab"
)

// TestMain stops the private PostgreSQL of internal/pglab, if a benchmark
// started one.
func TestMain(m *testing.M) { os.Exit(pglab.Main(m)) }
