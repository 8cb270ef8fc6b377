package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "file")
	for _, text := range []string{"first", "second, longer"} {
		if err := Write(path, strings.NewReader(text), 0o640); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != text {
			t.Errorf("content %q, want %q", b, text)
		}
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", info.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".file.*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
	// A reader that fails leaves the file as it was.
	if err := Write(path, failing{}, 0o640); err == nil {
		t.Fatal("a failing reader was written")
	}
	if b, _ := os.ReadFile(path); string(b) != "second, longer" {
		t.Errorf("after a failed write: %q", b)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, os.ErrInvalid }
