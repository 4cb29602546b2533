package claims

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/metrics"
)

// The reason a call failed is one of pkg/metrics' Reason* labels, which it
// exposes from the start; a failure of one claim within a call is
// metrics.ReasonClaim.

// callFailure is an error that failed a whole call, with its reason.
type callFailure struct {
	reason string
	err    error
}

func (f *callFailure) Error() string { return f.err.Error() }
func (f *callFailure) Unwrap() error { return f.err }

// failed tags err with the reason the call failed; a canceled or expired
// context is counted as such whatever step noticed it.
func failed(reason string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &callFailure{reason: reason, err: err}
}

// failureReason is the reason a call failed with err.
func failureReason(err error) string {
	if f, ok := errors.AsType[*callFailure](err); ok {
		return f.reason
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return metrics.ReasonCanceled
	}
	return metrics.ReasonOther
}

// callDone times a prepare or unprepare call and, when the whole call
// failed (every claim of it: the kubelet retries them), counts and logs
// the failure by reason.
func callDone(ctx context.Context, call string, claims int, start time.Time, took prometheus.Observer, failures *prometheus.CounterVec, err error) {
	took.Observe(time.Since(start).Seconds())
	if err != nil {
		reason := failureReason(err)
		failures.WithLabelValues(reason).Inc()
		klog.FromContext(ctx).Error(err, call+" call failed", "claims", claims, "reason", reason)
	}
}
