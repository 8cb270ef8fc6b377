package runtimeconfig

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// CRIODropInName sorts after the drop-ins distributions ship, and CRI-O
// reads its drop-ins in name order, later ones overriding earlier ones.
const CRIODropInName = "99-coreguard-nri.conf"

// crioDropIn turns NRI on; enable_nri exists in every CRI-O with NRI (1.26
// and later). Other NRI keys keep their defaults, which accept external
// plugins on /var/run/nri/nri.sock.
const crioDropIn = `# Written by coreguard enable-nri: NRI on (the default since CRI-O 1.30).
[crio.nri]
enable_nri = true
`

// WriteCRIODropIn puts coreguard's NRI drop-in into CRI-O's drop-in
// directory (created if missing). Changed is false when it was already
// there as written.
func WriteCRIODropIn(dir string) (path string, changed bool, err error) {
	path = filepath.Join(dir, CRIODropInName)
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, []byte(crioDropIn)) {
		return path, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return path, false, err
	}
	return path, true, writeAtomic(path, []byte(crioDropIn), 0o644)
}
