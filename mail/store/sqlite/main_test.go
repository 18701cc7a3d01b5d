package sqlite_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that closing a store stops every goroutine it started
// (lock renewals, the pools' openers).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
