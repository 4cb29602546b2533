//go:build e2e

package e2e

import "os/exec"

func execOutput(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).Output()
}
