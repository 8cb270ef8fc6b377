// Package coreguard builds the coreguard binary and runs it as an external
// NRI plugin next to a harness containerd, for the e2e tests and the demo.
package coreguard

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

const mainPkg = "github.com/coreguard/coreguard/cmd/coreguard"

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Build compiles coreguard (static, CGO_ENABLED=0) into a temp dir, once
// per process, and returns the binary's path. It must run inside the
// coreguard module. RemoveBuild deletes the dir.
func Build() (string, error) {
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "coreguard-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "coreguard")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", buildBin, mainPkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", mainPkg, err, out)
		}
	})
	return buildBin, buildErr
}

// RemoveBuild deletes what Build and MakeInstall made (call it from TestMain).
func RemoveBuild() {
	for _, d := range []string{buildDir, installStage} {
		if d != "" {
			_ = os.RemoveAll(d)
		}
	}
}
