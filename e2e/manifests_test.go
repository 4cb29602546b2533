//go:build e2e

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
)

// applyManifests creates every object of a YAML file, each with the options
// prepare returns (it may change the object first), and deletes them again
// when the test ends; it returns the kinds it saw.
func applyManifests(ctx context.Context, t *testing.T, file string, prepare func(*unstructured.Unstructured) metav1.CreateOptions) map[string]bool {
	t.Helper()
	clientFor := objectClients(t)
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, obj := range decodeObjects(t, string(data)) {
		gvk := obj.GroupVersionKind()
		kinds[gvk.Kind] = true
		client := clientFor(obj)
		opts := prepare(obj)
		_, err = client.Create(ctx, obj, opts)
		require.NoError(t, err, "%s %s", gvk.Kind, obj.GetName())
		if opts.DryRun == nil {
			deleteWhenDone(t, client, obj)
		}
	}
	return kinds
}

// deleteWhenDone deletes obj when the test ends, and waits until it is gone.
func deleteWhenDone(t *testing.T, client dynamic.ResourceInterface, obj *unstructured.Unstructured) {
	kind, name := obj.GetKind(), obj.GetName()
	// Foreground: the namespace's pods are gone when the test ends.
	t.Cleanup(func() {
		_ = client.Delete(context.Background(), name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
		// Wait until it is gone: the next test applies the same
		// objects, and a terminating namespace refuses them.
		err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := client.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		assert.NoError(t, err, "%s %s still there after deletion", kind, name)
	})
}

// applyServerSide applies every object of a YAML file as `kubectl apply
// --server-side --force-conflicts` does, each changed by prepare first: how
// an operator installs a release's manifests, and later the next release's
// over them. What it creates is deleted when the test ends.
func applyServerSide(ctx context.Context, t *testing.T, file string, prepare func(*unstructured.Unstructured)) {
	t.Helper()
	clientFor := objectClients(t)
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	for _, obj := range decodeObjects(t, string(data)) {
		prepare(obj)
		// A typed object converted back (onHarness) carries an empty
		// status: not the applier's to own.
		unstructured.RemoveNestedField(obj.Object, "status")
		client := clientFor(obj)
		_, err := client.Get(ctx, obj.GetName(), metav1.GetOptions{})
		created := apierrors.IsNotFound(err)
		_, err = client.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "e2e-apply", Force: true})
		require.NoError(t, err, "apply %s %s", obj.GetKind(), obj.GetName())
		if created {
			deleteWhenDone(t, client, obj)
		}
	}
}

// objectClients returns a function that finds the dynamic client of an
// object's kind (and namespace) through the apiserver's discovery.
func objectClients(t *testing.T) func(*unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.RestConfig)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cluster.Client.Discovery()))
	return func(obj *unstructured.Unstructured) dynamic.ResourceInterface {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, gvk.String())
		if ns := obj.GetNamespace(); ns != "" {
			return dyn.Resource(m.Resource).Namespace(ns)
		}
		return dyn.Resource(m.Resource)
	}
}

// TestManifestsApplyAndGrantWhatTheDriverUses applies the deployment
// manifests to the real apiserver (every object validated, the DaemonSet
// with a server-side dry run since no image can be pulled here) and checks
// with SubjectAccessReviews that the driver's service account may do what
// the driver does, including the claim status writes of KEP-4817.
func TestManifestsApplyAndGrantWhatTheDriverUses(t *testing.T) {
	ctx := t.Context()
	kinds := applyManifests(ctx, t, "../deployments/manifests/sriov-dra.yaml", func(obj *unstructured.Unstructured) metav1.CreateOptions {
		if obj.GetKind() == "DaemonSet" {
			return metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		}
		return metav1.CreateOptions{}
	})
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "DaemonSet", "ConfigMap", "DeviceClass"} {
		assert.True(t, kinds[k], "manifests include a %s", k)
	}
	user := "system:serviceaccount:sriov-dra:sriov-dra"
	for _, a := range []authzv1.ResourceAttributes{
		{Group: "resource.k8s.io", Resource: "resourceslices", Verb: "create"},
		{Group: "resource.k8s.io", Resource: "resourceslices", Verb: "update"},
		{Group: "resource.k8s.io", Resource: "resourceslices", Verb: "delete"},
		{Group: "resource.k8s.io", Resource: "resourceslices", Verb: "watch"},
		{Group: "resource.k8s.io", Resource: "resourceclaims", Verb: "get", Namespace: "any"},
		{Group: "resource.k8s.io", Resource: "deviceclasses", Verb: "get"},
		{Group: "resource.k8s.io", Resource: "resourceclaims", Subresource: "status", Verb: "update", Namespace: "any"},
		{Group: "resource.k8s.io", Resource: "resourceclaims", Subresource: "driver", Verb: "associated-node:update", Namespace: "any"},
		{Group: "resource.k8s.io", Resource: "resourceclaims", Subresource: "driver", Verb: "associated-node:patch", Namespace: "any"},
		{Group: "", Resource: "nodes", Verb: "get"},
		{Group: "", Resource: "pods", Verb: "list"},
		{Group: "", Resource: "pods", Verb: "watch"},
		{Group: "", Resource: "pods", Verb: "get", Namespace: "any"},
		{Group: "", Resource: "events", Verb: "create", Namespace: "default"},
		{Group: "resource.k8s.io", Resource: "resourceclaims", Verb: "list"},
		{Group: "resource.k8s.io", Resource: "deviceclasses", Verb: "watch"},
	} {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &a}}
		got, err := cluster.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		require.NoError(t, err)
		assert.True(t, got.Status.Allowed, "%s may %s %s/%s: %s", user, a.Verb, a.Resource, a.Subresource, got.Status.Reason)
	}
	assertOwnNodeSlicesOnly(t)
	denied := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user,
		ResourceAttributes: &authzv1.ResourceAttributes{Group: "", Resource: "secrets", Verb: "get", Namespace: "kube-system"}}}
	got, err := cluster.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, denied, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.False(t, got.Status.Allowed, "no more than it needs")
}

// assertOwnNodeSlicesOnly acts as the driver's service account on node
// e2e-node (impersonation with the node-name extra a bound token carries)
// and shows the ValidatingAdmissionPolicy at work: its own node's slice is
// accepted, another node's is refused.
func assertOwnNodeSlicesOnly(t *testing.T) {
	ctx := t.Context()
	cfg := rest.CopyConfig(cluster.RestConfig)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:sriov-dra:sriov-dra",
		Groups:   []string{"system:serviceaccounts", "system:authenticated"},
		Extra:    map[string][]string{"authentication.kubernetes.io/node-name": {cluster.NodeName}},
	}
	sa, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	slices := sa.ResourceV1().ResourceSlices()
	var lastErr error
	// The policy takes a moment to be loaded by the apiserver.
	require.Eventually(t, func() bool {
		_, lastErr = slices.Create(ctx, smokeSlice("vap-other", "some-other-node", "sriov.dra.dev", 1), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return lastErr != nil && strings.Contains(lastErr.Error(), "may not write ResourceSlices of node some-other-node")
	}, 30*time.Second, 200*time.Millisecond, "another node's slice must be refused; last: %v", lastErr)
	_, err = slices.Create(ctx, smokeSlice("vap-own", cluster.NodeName, "sriov.dra.dev", 1), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	assert.NoError(t, err, "its own node's slice is accepted")
}
