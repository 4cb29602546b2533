package kubectlplugin

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
)

// read lists the claims of every namespace: a claim elsewhere than the
// current namespace still holds a node's devices.
func TestReadEveryNamespace(t *testing.T) {
	s := snapshot()
	other := allocated("c", "n1", nil, vfName("3b", 2))
	other.Namespace = "elsewhere"
	objs := []runtime.Object{&other}
	for i := range s.Slices {
		objs = append(objs, &s.Slices[i])
	}
	for i := range s.Claims {
		objs = append(objs, &s.Claims[i])
	}
	for i := range s.Classes {
		objs = append(objs, &s.Classes[i])
	}
	got, err := read(t.Context(), fake.NewClientset(objs...), DefaultDriver)
	require.NoError(t, err)
	assert.Len(t, got.Slices, len(s.Slices))
	assert.Len(t, got.Claims, len(s.Claims)+1)
	assert.Len(t, got.Classes, len(s.Classes))
}

// A bad -o is refused before the cluster is asked anything.
func TestCommandOutputFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{Out: &out, ErrOut: &errOut})
	cmd.SetArgs([]string{"capacity", "-o", "yaml", "--kubeconfig", "/nonexistent"})
	assert.EqualError(t, cmd.Execute(), `unknown output format "yaml": table, wide or json`)
	assert.Empty(t, out.String())
}
