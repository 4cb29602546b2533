package v1alpha1

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Who may set what. Claims and claim templates are written by tenants in
// their namespaces; DeviceClasses by the cluster admin. A claim's NetConfig
// may set only what cannot reach another tenant or the host: how its own
// device is named and addressed inside its own pod. Everything else (the
// driver bound on the host, host device nodes, the VF's VLAN, trust, spoof
// check, MTU, and every field added later that is not listed here) comes
// from a DeviceClass, or from a claim only where its class grants it in
// claimMaySet.

// claimSafe are the paths a claim may always set. A new field is class-only
// unless it is added here on purpose.
var claimSafe = []string{
	"apiVersion", "kind", "resourceName", "rdma", "additionalInfo",
	"network.interfaceName", "network.mac", "network.addresses", "network.routes",
}

// GrantField is the field of a DeviceClass's NetConfig that hands named
// class-only fields to its claims.
const GrantField = "claimMaySet"

// Fields lists every field path of a NetConfig in declaration order, a
// section's fields after it ("network", "network.interfaceName", ...).
func Fields() []string {
	return fieldPaths(reflect.TypeFor[NetConfig](), "")
}

func fieldPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		out = append(out, prefix+name)
		if sub := structOf(f.Type); sub != nil {
			out = append(out, fieldPaths(sub, prefix+name+".")...)
		}
	}
	return out
}

// structOf is the struct a section field holds (a *Network), or nil for a
// value field; lists of structs (routes) are values.
func structOf(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		return t.Elem()
	}
	return nil
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// ClassOnlyFields lists, in declaration order, the paths a claim may set
// only where its DeviceClass grants them (claimMaySet itself included: a
// claim never grants).
func ClassOnlyFields() []string {
	var out []string
	for _, p := range Fields() {
		if !slices.Contains(claimSafe, p) && !isSection(p) {
			out = append(out, p)
		}
	}
	return out
}

// GrantableFields are the class-only fields a class may hand to its claims.
func GrantableFields() []string {
	return slices.DeleteFunc(ClassOnlyFields(), func(p string) bool { return p == GrantField })
}

// isSection tells a path that only holds other fields ("network").
func isSection(path string) bool {
	for _, p := range Fields() {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// SetFields lists, in declaration order, the value fields c sets: present
// and not empty (a false or zero pointer counts; an empty string does not,
// as the decoder leaves an unset field).
func (c *NetConfig) SetFields() []string {
	return setPaths(reflect.ValueOf(c).Elem(), "")
}

func setPaths(v reflect.Value, prefix string) []string {
	var out []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := jsonName(f)
		fv := v.Field(i)
		if name == "" || fv.IsZero() {
			continue
		}
		if structOf(f.Type) != nil {
			out = append(out, setPaths(fv.Elem(), prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// ClassOnlySet lists the class-only fields c sets, in declaration order.
func (c *NetConfig) ClassOnlySet() []string {
	only := ClassOnlyFields()
	return slices.DeleteFunc(c.SetFields(), func(p string) bool { return !slices.Contains(only, p) })
}

// NotGrantedError refuses a class-only field in a claim's config. Its
// words are the admission policy's too.
type NotGrantedError struct {
	Field string
	// Class is the DeviceClass of the request the config applies to ("" when
	// unknown).
	Class string
}

func (e *NotGrantedError) Error() string {
	if e.Class == "" {
		return fmt.Sprintf("%s may only be set by a DeviceClass", e.Field)
	}
	return fmt.Sprintf("%s may only be set by a DeviceClass; DeviceClass %s does not grant it to claims (%s)", e.Field, e.Class, GrantField)
}

// CheckClaim refuses the first class-only field a claim's config sets that
// granted (the class's claimMaySet) does not list; it returns the granted
// fields the claim does set, for the caller to log.
func CheckClaim(c *NetConfig, class string, granted []string) (used []string, err error) {
	for _, f := range c.ClassOnlySet() {
		if f == GrantField || !slices.Contains(granted, f) {
			return nil, &NotGrantedError{Field: f, Class: class}
		}
		used = append(used, f)
	}
	return used, nil
}

// validateGrants checks claimMaySet: each entry a class-only field, once.
func (c *NetConfig) validateGrants() []error {
	var errs []error
	grantable := GrantableFields()
	for i, f := range c.ClaimMaySet {
		switch {
		case !slices.Contains(grantable, f):
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a field a class can grant (one of %s)", GrantField, i, f, strings.Join(grantable, ", ")))
		case slices.Index(c.ClaimMaySet, f) < i:
			errs = append(errs, fmt.Errorf("%s[%d]: %q is listed twice", GrantField, i, f))
		}
	}
	return errs
}
