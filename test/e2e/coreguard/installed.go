package coreguard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// What `make install` writes under DESTDIR (the Makefile's NRI_PLUGIN_DIR,
// NRI_CONF_DIR and NRI_INDEX defaults): the runtime's default NRI dirs.
const (
	PluginName    = "10-coreguard"
	installedBin  = "opt/nri/plugins/" + PluginName
	installedConf = "etc/nri/conf.d/" + PluginName + ".conf"
)

var (
	installOnce  sync.Once
	installStage string
	installErr   error
)

// MakeInstall runs `make install DESTDIR=...` once per process and returns
// the files it wrote: the plugin binary and its configuration, which the
// tests copy, byte for byte, into a runtime's plugin and config dirs.
// RemoveBuild deletes them.
func MakeInstall() (bin, conf string, err error) {
	installOnce.Do(func() {
		installStage, installErr = os.MkdirTemp("", "coreguard-install-")
		if installErr != nil {
			return
		}
		root, err := moduleRoot()
		if err != nil {
			installErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "-C", root, "--no-print-directory", "install", "DESTDIR="+installStage)
		// A make running the tests must not hand its jobserver to this one.
		cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
			return strings.HasPrefix(e, "MAKEFLAGS=") || strings.HasPrefix(e, "MFLAGS=") || strings.HasPrefix(e, "MAKELEVEL=")
		})
		if out, err := cmd.CombinedOutput(); err != nil {
			installErr = fmt.Errorf("make install DESTDIR=%s: %v\n%s", installStage, err, out)
		}
	})
	return filepath.Join(installStage, installedBin), filepath.Join(installStage, installedConf), installErr
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// InstallOptions say where the runtime looks for pre-installed plugins and
// what the admin sets in coreguard's configuration.
type InstallOptions struct {
	PluginDir, ConfigDir string // the runtime's NRI plugin_path and plugin_config_path
	// Config is YAML merged over the installed configuration (an admin's
	// edit of 10-coreguard.conf); its keys win, mapping by mapping.
	Config string
	// Settings the tests need, set in the configuration as an admin would:
	// SysfsRoot (a generated topology) and LogPath (log.file, at level
	// debug, since the runtime discards a pre-installed plugin's output).
	SysfsRoot, LogPath string
}

// Installed is coreguard installed into a runtime's NRI dirs: the runtime
// starts it (at its own start) with no arguments, as it starts any plugin.
type Installed struct {
	Bin     string // the executable in the runtime's plugin dir
	Conf    string // its configuration in the runtime's config dir
	LogPath string // log.file
	opts    InstallOptions
}

// Install copies what `make install` wrote into opts' dirs, with the
// configuration edited as opts say. The runtime starts it when it (re)starts.
func Install(opts InstallOptions) (*Installed, error) {
	bin, conf, err := MakeInstall()
	if err != nil {
		return nil, err
	}
	text, err := editConfig(conf, opts)
	if err != nil {
		return nil, err
	}
	in := &Installed{Bin: filepath.Join(opts.PluginDir, PluginName),
		Conf: filepath.Join(opts.ConfigDir, PluginName+".conf"), LogPath: opts.LogPath, opts: opts}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{opts.PluginDir, opts.ConfigDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(in.Bin, data, 0o755); err != nil {
		return nil, err
	}
	return in, os.WriteFile(in.Conf, text, 0o644)
}

// Edit rewrites the installed configuration as an admin edits it: the
// installed one with cfg merged in (and the test's own settings). The
// runtime reads it when it restarts.
func (in *Installed) Edit(cfg string) error {
	_, conf, err := MakeInstall()
	if err != nil {
		return err
	}
	opts := in.opts
	opts.Config = cfg
	text, err := editConfig(conf, opts)
	if err != nil {
		return err
	}
	return os.WriteFile(in.Conf, text, 0o644)
}

// editConfig is the installed configuration with opts' settings merged in.
func editConfig(path string, opts InstallOptions) ([]byte, error) {
	base, err := readYAML(path)
	if err != nil {
		return nil, err
	}
	edit := map[string]any{}
	if opts.SysfsRoot != "" {
		edit["sysfsRoot"] = opts.SysfsRoot
	}
	if opts.LogPath != "" {
		edit["log"] = map[string]any{"file": opts.LogPath, "level": "debug"}
	}
	var admin map[string]any
	if err := yaml.Unmarshal([]byte(opts.Config), &admin); err != nil {
		return nil, fmt.Errorf("test configuration: %w", err)
	}
	merge(base, edit)
	merge(base, admin)
	return yaml.Marshal(base)
}

func readYAML(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// merge sets src's keys in dst, merging mappings key by key.
func merge(dst, src map[string]any) {
	for k, v := range src {
		sub, isMap := v.(map[string]any)
		have, haveMap := dst[k].(map[string]any)
		if isMap && haveMap {
			have = maps.Clone(have)
			merge(have, sub)
			dst[k] = have
			continue
		}
		dst[k] = v
	}
}

// Syncs counts the Synchronize calls logged so far (every start).
func (in *Installed) Syncs() int { return CountSyncs(in.LogPath) }

// WaitSyncs waits until n Synchronize calls are logged.
func (in *Installed) WaitSyncs(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for in.Syncs() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("pre-installed coreguard synchronized %d times, want %d, after %v:\n%s",
				in.Syncs(), n, timeout, in.LogTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// LogFile is log.file.
func (in *Installed) LogFile() string { return in.LogPath }

// LogTail returns the last n lines of the log file.
func (in *Installed) LogTail(n int) string { return logTail(in.LogPath, n) }

// MetricsURL is the /metrics URL of the latest start, from its log line.
func (in *Installed) MetricsURL() (string, error) {
	b, err := os.ReadFile(in.LogPath)
	if err != nil {
		return "", err
	}
	all := metricsLine.FindAllStringSubmatch(string(b), -1)
	if all == nil {
		return "", fmt.Errorf("coreguard logged no metrics address:\n%s", in.LogTail(20))
	}
	return "http://" + all[len(all)-1][1] + "/metrics", nil
}

// Pid is the running plugin's process (the runtime started it), 0 if none.
func (in *Installed) Pid() int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == in.Bin {
			return pid
		}
	}
	return 0
}

// Kill kills the plugin (a crash) and waits until it is gone. The runtime
// does not restart a pre-installed plugin until it restarts itself.
func (in *Installed) Kill() error {
	pid := in.Pid()
	if pid == 0 {
		return errors.New("no pre-installed coreguard runs")
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for in.Pid() == pid {
		if time.Now().After(deadline) {
			return fmt.Errorf("coreguard (pid %d) survives SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
