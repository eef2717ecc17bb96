package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build compiles ./cmd/... of the module at moduleRoot into outDir with the
// toolchain running this process (tests must not depend on PATH).
func Build(moduleRoot, outDir string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("no go toolchain found (GOROOT %s): %w", runtime.GOROOT(), err)
		}
	}
	cmd := exec.Command(goBin, "build", "-o", outDir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}
