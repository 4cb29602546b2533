package resourceslices

import (
	resourceapi "k8s.io/api/resource/v1"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// Reuse carries the attribute maps of one Build over to the next: a device
// unchanged since (the same discovery.Device, resource name and topology
// choice) gets the map it got then instead of a new one. A rescan of a host
// where nothing changed then builds no maps at all; they were most of what
// a rescan of thousands of VFs allocated, about 4.7 KB each.
//
// The maps are shared by the pools of consecutive builds: nothing may
// modify a built device's attributes (nothing does: slicesync only sets
// taint times, and a device's taints are its own). A Reuse serves one
// publishing loop and is not safe for concurrent use; its zero value is
// ready.
type Reuse struct {
	// last are the devices of the last Build, in name order; spare is the
	// slice before, whose backing array the next Build fills.
	last, spare []built
}

// built is one device as the last Build made it.
type built struct {
	// dev is in that Build's inventory, which is immutable.
	dev          *discovery.Device
	resourceName string
	noTopology   bool
	attrs        map[resourceapi.QualifiedName]resourceapi.DeviceAttribute
	problems     []Problem
}

// reuseRun is one Build's use of a Reuse; its methods do nothing on a nil
// Reuse.
type reuseRun struct {
	r    *Reuse
	next []built
	// i is where the walk through r.last has got to: Build visits devices
	// in name order, as r.last holds them.
	i int
}

func (r *Reuse) start(n int) *reuseRun {
	if r == nil {
		return &reuseRun{}
	}
	next := r.spare[:0]
	if cap(next) < n {
		next = make([]built, 0, n)
	}
	return &reuseRun{r: r, next: next}
}

// take fills b's attributes and problems from the last Build when its
// device had the same name, fields, resource name and topology choice.
func (u *reuseRun) take(b *built) bool {
	if u.r == nil {
		return false
	}
	last := u.r.last
	for u.i < len(last) && last[u.i].dev.Name < b.dev.Name {
		u.i++
	}
	if u.i == len(last) {
		return false
	}
	p := &last[u.i]
	if p.resourceName != b.resourceName || p.noTopology != b.noTopology || !p.dev.Equal(b.dev) {
		return false
	}
	b.attrs, b.problems = p.attrs, p.problems
	return true
}

// keep records b for the next Build.
func (u *reuseRun) keep(b built) {
	if u.r != nil {
		u.next = append(u.next, b)
	}
}

// done makes this Build's devices the ones the next compares with. The
// previous ones' array becomes the spare, cleared so that it holds no old
// inventory or maps alive.
func (u *reuseRun) done() {
	if u.r == nil {
		return
	}
	clear(u.r.last[:cap(u.r.last)])
	u.r.spare, u.r.last = u.r.last[:0], u.next
}
