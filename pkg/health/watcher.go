package health

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// Source reports host events that may change the devices or their health.
// notify may be called from any goroutine, as often as events come.
type Source interface {
	WatchEvents(ctx context.Context, notify func(reason string)) error
}

// Watcher rescans the host when a Source reports an event, at most once per
// Debounce window however many events come, and every Periodic anyway as a
// fallback for anything no event reports.
type Watcher struct {
	Source   Source
	Debounce time.Duration
	Periodic time.Duration
	Rescan   func(ctx context.Context, reason string)
}

// Run rescans until ctx ends. A Source that fails is logged, and the
// periodic rescan carries on alone.
func (w *Watcher) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	events := make(chan string, 1)
	if w.Source != nil {
		go func() {
			err := w.Source.WatchEvents(ctx, func(reason string) {
				select {
				case events <- reason:
				default: // one pending event is enough: a rescan sees all
				}
			})
			if err != nil && ctx.Err() == nil {
				logger.Error(err, "Watching host events failed; relying on the periodic rescan", "interval", w.Periodic)
			}
		}()
	}
	tick := time.NewTicker(w.Periodic)
	defer tick.Stop()
	var window <-chan time.Time
	pending := ""
	for {
		select {
		case <-ctx.Done():
			return
		case reason := <-events:
			if window == nil {
				window = time.After(w.Debounce)
				pending = reason
			}
		case <-window:
			window = nil
			w.Rescan(ctx, pending)
		case <-tick.C:
			if window == nil {
				w.Rescan(ctx, "periodic")
			}
		}
	}
}
