package main

import (
	"fmt"
	"io"
	"os"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
)

// loadConfig reads a classic config as the daemon does: a field the classic
// plugin would ignore is ignored, with a warning naming it on warn.
func loadConfig(path, prefix string, warn io.Writer) (*classic.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, warnings, err := classic.ParseLenient(data, prefix)
	for _, w := range warnings {
		fmt.Fprintf(warn, "warning: %s: %v (ignored, as the classic plugin does)\n", path, w)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
