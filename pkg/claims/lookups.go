package claims

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// lookups answers the prepare path's questions to the API — which
// DeviceClass a request named, which pod a claim serves — from informer
// caches, so that preparing a claim costs no API round trip. An object the
// cache does not have yet (just created, or the cache has not synced) is
// fetched once with a GET.
type lookups struct {
	client  kubernetes.Interface
	classes cache.SharedIndexInformer
	pods    cache.SharedIndexInformer
}

const podUIDIndex = "uid"

// newLookups sets up the caches; start runs them.
func newLookups(client kubernetes.Interface, nodeName string) *lookups {
	all := informers.NewSharedInformerFactory(client, 0)
	onNode := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
	}))
	l := &lookups{client: client, classes: all.Resource().V1().DeviceClasses().Informer(), pods: onNode.Core().V1().Pods().Informer()}
	_ = l.pods.AddIndexers(cache.Indexers{podUIDIndex: func(obj any) ([]string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		return []string{string(m.GetUID())}, nil
	}})
	// Only the spec and the claim statuses matter here: drop the rest to
	// keep the cache small on a node with hundreds of pods.
	_ = l.pods.SetTransform(func(obj any) (any, error) {
		if pod, ok := obj.(*corev1.Pod); ok {
			pod.ManagedFields = nil
			pod.Status = corev1.PodStatus{
				ResourceClaimStatuses:       pod.Status.ResourceClaimStatuses,
				ExtendedResourceClaimStatus: pod.Status.ExtendedResourceClaimStatus,
			}
		}
		return obj, nil
	})
	return l
}

func (l *lookups) start(ctx context.Context) {
	go l.classes.RunWithContext(ctx)
	go l.pods.RunWithContext(ctx)
}

// deviceClasses returns the named classes that exist.
func (l *lookups) deviceClasses(ctx context.Context, names []string) map[string]*resourceapi.DeviceClass {
	out := make(map[string]*resourceapi.DeviceClass, len(names))
	for _, name := range names {
		if obj, ok, err := l.classes.GetStore().GetByKey(name); err == nil && ok {
			out[name] = obj.(*resourceapi.DeviceClass)
			continue
		}
		class, err := l.client.ResourceV1().DeviceClasses().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				klog.FromContext(ctx).Error(err, "Reading device class", "deviceClass", name)
			}
			continue
		}
		out[name] = class
	}
	return out
}

// claimPods returns the pods the claims are reserved for (the first
// consumer of each), by UID.
func (l *lookups) claimPods(ctx context.Context, claims []*resourceapi.ResourceClaim) map[types.UID]*corev1.Pod {
	out := map[types.UID]*corev1.Pod{}
	tried := map[types.UID]bool{}
	for _, c := range claims {
		if len(c.Status.ReservedFor) == 0 {
			continue
		}
		ref := c.Status.ReservedFor[0]
		if ref.Resource != "pods" || ref.APIGroup != "" || tried[ref.UID] {
			continue
		}
		tried[ref.UID] = true
		if pod, err := l.pod(ctx, c, ref.Name, ref.UID); err == nil {
			out[ref.UID] = pod
		} else {
			klog.FromContext(ctx).V(2).Info("Cannot read the claim's pod; merging its claims' variables pod-wide", "claim", klog.KObj(c), "err", err)
		}
	}
	return out
}

// pod returns the claim's pod from the cache when the cached copy already
// names the claim (a claim made from a template is named in the pod's
// status, which the cache may not have seen yet), else from the API.
func (l *lookups) pod(ctx context.Context, c *resourceapi.ResourceClaim, name string, uid types.UID) (*corev1.Pod, error) {
	if objs, err := l.pods.GetIndexer().ByIndex(podUIDIndex, string(uid)); err == nil && len(objs) == 1 {
		if pod := objs[0].(*corev1.Pod); podUsesClaim(pod, c.Name) {
			return pod, nil
		}
	}
	namespace := c.Namespace
	pod, err := l.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if pod.UID != uid {
		return nil, fmt.Errorf("pod %s/%s has UID %s, the claim is reserved for %s", namespace, name, pod.UID, uid)
	}
	return pod, nil
}

// podUsesClaim reports whether the pod names the ResourceClaim.
func podUsesClaim(pod *corev1.Pod, claim string) bool {
	for _, pc := range pod.Spec.ResourceClaims {
		if pc.ResourceClaimName != nil && *pc.ResourceClaimName == claim {
			return true
		}
	}
	for _, st := range pod.Status.ResourceClaimStatuses {
		if st.ResourceClaimName != nil && *st.ResourceClaimName == claim {
			return true
		}
	}
	ext := pod.Status.ExtendedResourceClaimStatus
	return ext != nil && ext.ResourceClaimName == claim
}
