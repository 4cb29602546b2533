package slicesync

import (
	"bytes"

	resourceapi "k8s.io/api/resource/v1"
)

// devicesEqual compares two device lists by their protobuf encoding, which
// covers every field the API has (maps in sorted key order, nil and empty
// alike, as the API stores them). The reflection-based deep comparison it
// replaces allocated about 18 KB per device, 37 MB for 2,048 devices.
type devicesEqual struct{ a, b []byte }

func (e *devicesEqual) equal(x, y []resourceapi.Device) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		var ok bool
		if e.a, ok = encode(e.a, &x[i]); !ok {
			return false
		}
		if e.b, ok = encode(e.b, &y[i]); !ok {
			return false
		}
		if !bytes.Equal(e.a, e.b) {
			return false
		}
	}
	return true
}

// encode marshals d into buf's storage; false if it cannot be encoded (then
// the devices count as different, and the write shows the error).
func encode(buf []byte, d *resourceapi.Device) ([]byte, bool) {
	n := d.Size()
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := d.MarshalToSizedBuffer(buf); err != nil {
		return buf, false
	}
	return buf, true
}
