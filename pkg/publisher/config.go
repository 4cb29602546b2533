package publisher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"

	"k8s.io/klog/v2"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
)

// LoadConfig (re)reads the classic config when its bytes changed. A bad new
// config is reported and the last good one stays in force.
func (p *Publisher) LoadConfig(ctx context.Context) error {
	if p.configPath == "" {
		return nil
	}
	data, err := os.ReadFile(p.configPath)
	if err != nil {
		err = fmt.Errorf("read config %s: %w", p.configPath, err)
		if p.config != nil {
			if err.Error() == p.configUnreadable {
				return nil // reported already; the last good config stays
			}
			p.configUnreadable = err.Error()
			return fmt.Errorf("%w; keeping the last good config", err)
		}
		return err
	}
	if p.configUnreadable != "" {
		klog.FromContext(ctx).Info("Config file readable again", "path", p.configPath)
		p.configUnreadable = ""
	}
	if p.config != nil && bytes.Equal(data, p.configBytes) {
		return nil
	}
	cfg, warnings, err := classic.ParseLenient(data, p.resourcePrefix)
	p.warnIgnored(ctx, data, warnings)
	if err != nil {
		if p.config != nil {
			err = fmt.Errorf("config %s is invalid, keeping the last good one: %w", p.configPath, err)
		} else {
			err = fmt.Errorf("config %s: %w", p.configPath, err)
		}
		p.configBytes = data // report a bad file once, not on every rescan
		return err
	}
	if p.config != nil {
		klog.FromContext(ctx).Info("Classic config changed, reloaded", "path", p.configPath, "pools", len(cfg.ResourceList))
	}
	p.config, p.configBytes = cfg, data
	p.metrics.ConfigWarnings.Set(float64(len(warnings)))
	return nil
}

// warnIgnored reports the fields a config version's parse ignored. The
// classic plugin ignores a field it does not know; so do we, but loudly:
// it is often a misspelt one ("driver" for "drivers"), and a selector
// field dropped widens its pool in silence. Each is logged, and the
// version gets one Warning event on the Node.
func (p *Publisher) warnIgnored(ctx context.Context, data []byte, warnings []error) {
	if len(warnings) == 0 {
		return
	}
	fields := make([]string, len(warnings))
	for i, w := range warnings {
		fields[i] = w.Error()
		klog.FromContext(ctx).Info("Warning: classic config field ignored", "path", p.configPath, "field", fields[i])
	}
	sum := sha256.Sum256(data)
	p.warnf(ctx, "ClassicConfigFieldsIgnored", fmt.Sprintf("classic config %s (sha256 %x): %d field(s) ignored, check for misspellings (an ignored selector widens its pool): %s",
		p.configPath, sum[:6], len(fields), strings.Join(fields, "; ")))
}

func (p *Publisher) warnf(ctx context.Context, reason, message string) {
	if p.warn != nil {
		p.warn.Warn(ctx, reason, message)
	}
}
