package claims

import (
	"context"
)

// SweepFiles calls sweep with the device-info files the prepared claims
// own, under the node lock: another instance (a rolling update) may be
// preparing. It runs once at start-up, after Recover and the first
// discovery, before any prepare is served.
func (p *Executor) SweepFiles(ctx context.Context, sweep func(owned map[string]bool)) error {
	cp, unlock, err := p.lockState(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	owned := map[string]bool{}
	for _, c := range cp.Claims {
		for _, f := range c.InfoFiles {
			owned[f] = true
		}
	}
	sweep(owned)
	return nil
}
