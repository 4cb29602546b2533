package host

import "testing"

// TestResolveRel: the one-allocation join of a link's directory and its
// target gives what filepath.Join gives.
func TestResolveRel(t *testing.T) {
	for _, tc := range []struct{ dir, target, want string }{
		{"bus/pci/devices", "../../../devices/pci0000:00/0000:3b:00.0", "devices/pci0000:00/0000:3b:00.0"},
		{"devices/pci0000:c0/0000:c0:00.0", "../0000:c0:01.0", "devices/pci0000:c0/0000:c0:01.0"},
		{"a/b", "../../x", "x"},
		{"a/b", "../../../x", "../x"},
		{"a/b", "../../../../x", "../../x"},
		{"a/b", "c", "a/b/c"},
		{"a/b", "c/../d", "a/b/d"},
		{"a/b", "./c", "a/b/c"},
		{"a/b", "..", "a"},
		{"a/b", "../", "a"},
		{"a/b", "../..", "."},
		{"a//b", "../c", "a/c"},
		{".", "../x", "../x"},
	} {
		if got := resolveRel(tc.dir, tc.target); got != tc.want {
			t.Errorf("resolveRel(%q, %q) = %q, want %q", tc.dir, tc.target, got, tc.want)
		}
	}
}
