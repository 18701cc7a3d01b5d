package ua

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every
// connection a Submitter opens is closed when Send returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
