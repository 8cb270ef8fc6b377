package kubelet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadCPUManager(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil: no file
		policy  string
		static  bool
		err     string
	}{
		{name: "no checkpoint", content: nil, policy: ""},
		{name: "none", content: ptr(`{"policyName":"none","defaultCpuSet":"","checksum":1353318690}`), policy: "none"},
		{name: "static", content: ptr(`{"policyName":"static","defaultCpuSet":"0,2-3","entries":{"uid":{"app":"1"}},"checksum":3}`),
			policy: "static", static: true},
		{name: "empty file", content: ptr(""), err: "not a CPU manager checkpoint"},
		{name: "not json", content: ptr("policy: static"), err: "not a CPU manager checkpoint"},
		{name: "no policy", content: ptr(`{"defaultCpuSet":"0-3"}`), err: "no policyName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.content != nil {
				if err := os.WriteFile(filepath.Join(dir, CPUManagerStateFile), []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := ReadCPUManager(dir)
			if tt.err != "" {
				var se *StateError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("err = %v, want a StateError naming the file and %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Policy != tt.policy || m.Static() != tt.static || (m.Conflict() != "") != tt.static {
				t.Errorf("got %+v (static %v, conflict %q)", m, m.Static(), m.Conflict())
			}
		})
	}
}

func TestReadCPUManagerUnreadable(t *testing.T) {
	for name, make := range map[string]func(path string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o755) },
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o644) }, // must not hang
		"device":    func(p string) error { return os.Symlink("/dev/zero", p) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := make(filepath.Join(dir, CPUManagerStateFile)); err != nil {
				t.Fatal(err)
			}
			var se *StateError
			if _, err := ReadCPUManager(dir); !errors.As(err, &se) || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("err = %v, want a StateError: not a regular file", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }
