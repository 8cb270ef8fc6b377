// Package runtimeconfig turns NRI on in a node's container runtime
// configuration (containerd's config.toml, or a CRI-O drop-in), for nodes
// whose runtime ships with NRI off: containerd 1.7, CRI-O before 1.30, or a
// distribution's config that disabled it. The chart's optional init step
// (`nri.patchRuntimeConfig`) runs it through `coreguard enable-nri`.
package runtimeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/coreguard/coreguard/internal/atomicfile"
)

// nriPlugin is the NRI plugin's table in containerd's config, version 2 and
// later (version 1 named plugins differently and is refused).
const nriPlugin = "io.containerd.nri.v1.nri"

// BackupSuffix is appended to the name of a config file kept as it was
// before coreguard rewrote it.
const BackupSuffix = ".before-coreguard"

// ContainerdChange says what PatchContainerd found and did.
type ContainerdChange struct {
	// Changed is true when the file was (re)written: NRI was off, or
	// external plugins were refused, or there was no file.
	Changed bool
	// Why lists what was wrong, e.g. "NRI disabled (disable = true)".
	Why []string
	// Backup is the copy of the file as it was, when there was one.
	Backup string
}

// PatchContainerd makes containerd's config at path turn NRI on and accept
// externally started plugins (the coreguard DaemonSet). It leaves a file
// that already does both untouched. A config file that does not exist is
// written with only NRI's section (containerd's defaults apply to the
// rest). The rewritten file keeps every setting but not comments or key
// order (TOML is re-encoded); the original is kept beside it with
// BackupSuffix. A config that a file in its imports overrides with NRI off
// is refused, naming that file: changing the main file would not help.
func PatchContainerd(path string) (ContainerdChange, error) {
	var ch ContainerdChange
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		ch.Changed, ch.Why = true, []string{"no config file: containerd runs its defaults, and 1.7's leave NRI off"}
		return ch, writeAtomic(path, []byte(newContainerdConfig), 0o644)
	}
	if err != nil {
		return ch, err
	}
	cfg, err := decodeContainerd(path, data)
	if err != nil {
		return ch, err
	}
	version, err := configVersion(path, cfg)
	if err != nil {
		return ch, err
	}
	if err := checkImports(path, cfg); err != nil {
		return ch, err
	}
	nri, err := table(cfg, "plugins", nriPlugin)
	if err != nil {
		return ch, fmt.Errorf("%s: %w", path, err)
	}
	switch v, ok := nri["disable"]; {
	case ok && v != false:
		ch.Why = append(ch.Why, fmt.Sprintf("NRI disabled (disable = %v)", v))
	case !ok && version < 3:
		// Version 2 is what containerd 1.7 reads, and 1.7 has NRI off
		// unless told otherwise (2.x, reading it, has it on: harmless).
		ch.Why = append(ch.Why, "NRI not enabled (no disable = false in a version 2 config: containerd 1.7 leaves it off)")
	}
	if v, ok := nri["disable_connections"]; ok && v != false {
		ch.Why = append(ch.Why, fmt.Sprintf("external plugins refused (disable_connections = %v)", v))
	}
	if len(ch.Why) == 0 {
		return ch, nil
	}
	nri["disable"] = false
	nri["disable_connections"] = false
	out, err := toml.Marshal(cfg)
	if err != nil {
		return ch, fmt.Errorf("%s: encoding the patched config: %w", path, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return ch, err
	}
	ch.Backup = path + BackupSuffix
	if err := writeAtomic(ch.Backup, data, info.Mode().Perm()); err != nil {
		return ch, err
	}
	ch.Changed = true
	return ch, writeAtomic(path, append([]byte(patchedHeader), out...), info.Mode().Perm())
}

const patchedHeader = "# NRI turned on by coreguard enable-nri; the file as it was is beside this one\n# (" + BackupSuffix + "). Comments were not kept.\n"

// newContainerdConfig is written where there was no config: version 2 is
// read by containerd 1.7 and migrated by 2.x.
const newContainerdConfig = `# Written by coreguard enable-nri: NRI on, external plugins accepted.
# Everything else is containerd's default.
version = 2

[plugins."io.containerd.nri.v1.nri"]
  disable = false
  disable_connections = false
`

func decodeContainerd(path string, data []byte) (map[string]any, error) {
	cfg := map[string]any{}
	if err := toml.Unmarshal(data, &cfg); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s:%d:%d: %v", path, row, col, de)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// configVersion is the file's `version`; 1 when absent, as containerd reads it.
func configVersion(path string, cfg map[string]any) (int64, error) {
	v, ok := cfg["version"]
	if !ok {
		v = int64(1)
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%s: version = %v: want an integer", path, v)
	}
	if n < 2 {
		return 0, fmt.Errorf("%s: config version %d names plugins differently; migrate it first (containerd config migrate) and run again", path, n)
	}
	return n, nil
}

// table returns the nested table at keys, creating missing ones.
func table(cfg map[string]any, keys ...string) (map[string]any, error) {
	t := cfg
	for i, k := range keys {
		v, ok := t[k]
		if !ok {
			n := map[string]any{}
			t[k] = n
			t = n
			continue
		}
		n, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is %T, not a table", dotted(keys[:i+1]), v)
		}
		t = n
	}
	return t, nil
}

func dotted(keys []string) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('.')
		}
		fmt.Fprintf(&b, "%q", k)
	}
	return b.String()
}

// checkImports refuses a config whose imports turn NRI off: containerd
// merges imported files over the main one, so they would win.
func checkImports(path string, cfg map[string]any) error {
	raw, ok := cfg["imports"]
	if !ok {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		return fmt.Errorf("%s: imports = %v: want a list of paths", path, raw)
	}
	for _, item := range list {
		pattern, ok := item.(string)
		if !ok {
			return fmt.Errorf("%s: imports: %v is not a path", path, item)
		}
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(path), pattern)
		}
		files, err := filepath.Glob(pattern)
		if err != nil {
			return fmt.Errorf("%s: imports: %q: %w", path, pattern, err)
		}
		slices.Sort(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("%s: imports: %w", path, err)
			}
			imp, err := decodeContainerd(f, data)
			if err != nil {
				return err
			}
			plugins, _ := imp["plugins"].(map[string]any)
			nri, _ := plugins[nriPlugin].(map[string]any)
			for _, key := range []string{"disable", "disable_connections"} {
				if v, ok := nri[key]; ok && v != false {
					return fmt.Errorf("%s, imported by %s, sets %s = %v for NRI, and imported files override the main one: set it to false there", f, path, key, v)
				}
			}
		}
	}
	return nil
}

// writeAtomic replaces path with data, never leaving it half written.
func writeAtomic(path string, data []byte, perm fs.FileMode) error {
	return atomicfile.Write(path, bytes.NewReader(data), perm)
}
