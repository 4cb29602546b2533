// Package nodeevents posts Warning Events on the driver's Node, where an
// operator looks first (`kubectl describe node`).
package nodeevents

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// eventInterval is how often the same warning is repeated as an Event.
const eventInterval = 10 * time.Minute

// Events posts Warning Events on the driver's Node, where `kubectl
// describe node` shows them: what an operator must act on. The same warning
// is posted once per interval, however often it happens.
type Events struct {
	client     kubernetes.Interface
	nodeName   string
	driverName string

	mu   sync.Mutex
	last map[string]time.Time
}

// New returns the node's event poster; a nil client posts nothing.
func New(client kubernetes.Interface, nodeName, driverName string) *Events {
	return &Events{client: client, nodeName: nodeName, driverName: driverName, last: map[string]time.Time{}}
}

// Warn posts a Warning event with the reason and message.
func (e *Events) Warn(ctx context.Context, reason, message string) {
	if e == nil || e.client == nil {
		return
	}
	now := time.Now()
	e.mu.Lock()
	key := reason + "\x00" + message
	if t, ok := e.last[key]; ok && now.Sub(t) < eventInterval {
		e.mu.Unlock()
		return
	}
	e.last[key] = now
	e.mu.Unlock()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: e.nodeName + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: e.nodeName, APIVersion: "v1"},
		Reason:         reason,
		Message:        message,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: e.driverName, Host: e.nodeName},
		FirstTimestamp: metav1.NewTime(now),
		LastTimestamp:  metav1.NewTime(now),
		Count:          1,
	}
	// Posting must never hold up the caller (which may hold the node lock).
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := e.client.CoreV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			klog.FromContext(ctx).Error(err, "Posting node event failed", "reason", reason)
		}
	}()
}
