package driver

import (
	"context"
	"errors"
)

// Reasons a whole prepare or unprepare call failed, as the errors metrics
// count them. A failure of one claim within a call is reasonClaim.
const (
	reasonClaim      = "claim"
	reasonCheckpoint = "checkpoint"
	reasonDiscovery  = "discovery"
	reasonBind       = "bind"
	reasonCanceled   = "canceled"
)

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
		return reasonCanceled
	}
	return "other"
}
