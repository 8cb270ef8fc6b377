package hostfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	mk := map[string]func(path string) error{
		"regular":  func(p string) error { return os.WriteFile(p, []byte("0-3\n"), 0o644) },
		"at limit": func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("x", 16)), 0o644) },
		"too long": func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("x", 17)), 0o644) },
		"fifo":     func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"dev zero": func(p string) error { return os.Symlink("/dev/zero", p) },
		"dir":      func(p string) error { return os.Mkdir(p, 0o755) },
		"link":     func(p string) error { return os.Symlink("regular", p) },
	}
	for name, f := range mk {
		if err := f(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		want string // content, or the error's type
	}{
		{"regular", "0-3\n"},
		{"at limit", strings.Repeat("x", 16)},
		{"link", "0-3\n"},
		{"too long", "TooLargeError"},
		{"fifo", "NotRegularError"},
		{"dev zero", "NotRegularError"},
		{"dir", "NotRegularError"},
		{"missing", "ErrNotExist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			b, err := Read(path, 16)
			var notRegular *NotRegularError
			var tooLarge *TooLargeError
			got := string(b)
			switch {
			case errors.As(err, &notRegular):
				got = "NotRegularError"
			case errors.As(err, &tooLarge):
				got = "TooLargeError"
			case errors.Is(err, fs.ErrNotExist):
				got = "ErrNotExist"
			case err != nil:
				t.Fatalf("Read: %v", err)
			}
			if got != tt.want {
				t.Errorf("Read(%s) = %q, want %q", tt.name, got, tt.want)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}
