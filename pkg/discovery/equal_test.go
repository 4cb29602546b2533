package discovery_test

import (
	"reflect"
	"testing"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// TestDeviceEqualSeesEveryField changes each field of a device in turn: the
// copy must no longer be Equal, so that a field added to Device but not to
// Equal cannot make a changed device look unchanged.
func TestDeviceEqualSeesEveryField(t *testing.T) {
	base := discovery.Device{Name: "pci-0000-3b-02-0", PCIAddress: "0000:3b:02.0", PKeys: []string{"0x7fff"},
		RDMADevices: []string{"mlx5_0"}, RDMACharDevices: []string{"infiniband/uverbs0"}}
	same := base
	same.PKeys = []string{"0x7fff"}
	if !base.Equal(&same) {
		t.Fatal("a copy with equal slices is not Equal")
	}
	typ := reflect.TypeFor[discovery.Device]()
	for i := range typ.NumField() {
		changed := base
		changed.PKeys = append([]string(nil), base.PKeys...)
		f := reflect.ValueOf(&changed).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int:
			f.SetInt(f.Int() + 1)
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Slice:
			f.Set(reflect.Append(f, reflect.ValueOf("x")))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", typ.Field(i).Name, f.Kind())
		}
		if base.Equal(&changed) {
			t.Errorf("Equal does not compare field %s", typ.Field(i).Name)
		}
	}
}
