package runtimeconfig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runtimeStandIn plays the runtime's side: restarting it opens the NRI
// socket when its config turns NRI on.
type runtimeStandIn struct {
	t        *testing.T
	socket   string
	nriOn    func() bool
	fail     error
	restarts []string
}

func (r *runtimeStandIn) RestartUnit(_ context.Context, unit string) error {
	r.restarts = append(r.restarts, unit)
	if r.fail != nil {
		return r.fail
	}
	if r.nriOn() {
		listen(r.t, r.socket)
	}
	return nil
}

func listen(t *testing.T, socket string) {
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func TestEnableNRI(t *testing.T) {
	for name, tc := range map[string]struct {
		runtime   string
		config    string // containerd's config; "" for none
		socketUp  bool
		fail      error
		restarts  int
		wantErr   string
		wantFiles bool
	}{
		"already on":                {runtime: Containerd, config: v2Off, socketUp: true},
		"containerd 1.7 default":    {runtime: Containerd, config: v2Off, restarts: 1, wantFiles: true},
		"containerd, no config":     {runtime: Containerd, restarts: 1, wantFiles: true},
		"containerd on, no socket":  {runtime: Containerd, config: "version = 3\n", wantErr: "already turns NRI on, yet nothing accepts"},
		"cri-o":                     {runtime: CRIO, restarts: 1, wantFiles: true},
		"restart fails":             {runtime: CRIO, fail: errors.New("access denied"), restarts: 1, wantErr: "restarting crio.service: access denied", wantFiles: true},
		"unknown runtime":           {runtime: "docker", wantErr: `runtime "docker"`},
		"restart, socket elsewhere": {runtime: Containerd, config: v2Off, restarts: 1, wantErr: "restarted, but nothing accepts connections", wantFiles: true},
	} {
		t.Run(name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "cg-nri")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			o := Options{
				Runtime: tc.runtime, ContainerdConfig: filepath.Join(dir, "config.toml"),
				CRIODropInDir: filepath.Join(dir, "crio.conf.d"), Socket: filepath.Join(dir, "nri.sock"),
				Unit: DefaultUnit(tc.runtime), Restart: true, Timeout: 2 * time.Second,
				Logf: func(format string, a ...any) { t.Logf(format, a...) },
			}
			if tc.config != "" {
				if err := os.WriteFile(o.ContainerdConfig, []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.socketUp {
				listen(t, o.Socket)
			}
			r := &runtimeStandIn{t: t, socket: o.Socket, fail: tc.fail, nriOn: func() bool {
				if tc.runtime == CRIO {
					_, err := os.Stat(filepath.Join(o.CRIODropInDir, CRIODropInName))
					return err == nil
				}
				return nriOf(t, o.ContainerdConfig)["disable"] == false
			}}
			if strings.Contains(name, "elsewhere") {
				r.nriOn = func() bool { return false }
				o.Timeout = 300 * time.Millisecond
			}
			o.Restarter = r
			err = EnableNRI(context.Background(), o)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if len(r.restarts) != tc.restarts {
				t.Errorf("restarts %v, want %d", r.restarts, tc.restarts)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			wrote := fmt.Sprint(files) != fmt.Sprint(filesBefore(o, tc.config, tc.socketUp))
			if wrote != tc.wantFiles {
				t.Errorf("files %v: written %v, want %v", files, wrote, tc.wantFiles)
			}
		})
	}
}

// filesBefore is what the test itself put in the dir.
func filesBefore(o Options, config string, socketUp bool) []string {
	var files []string
	if config != "" {
		files = append(files, o.ContainerdConfig)
	}
	if socketUp {
		files = append(files, o.Socket)
	}
	return files
}
