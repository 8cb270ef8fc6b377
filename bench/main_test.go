package bench

import (
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestMain quiets NRI's own logging (the adaptation and the stub log
// through logrus' standard logger) to errors, for every side alike, and
// removes the coreguard binary the process benchmarks built.
func TestMain(m *testing.M) {
	logrus.SetLevel(logrus.ErrorLevel)
	code := m.Run()
	removeBinary()
	os.Exit(code)
}
