package v1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	sigsjson "sigs.k8s.io/json"
)

// Decode reads a classic config strictly: unknown or duplicate fields
// (matched case-sensitively), trailing data and wrong types are errors. Every
// unknown field is reported, each with its path. It neither defaults nor
// validates.
func Decode(data []byte) (*Config, error) {
	var raw struct {
		ResourceList []struct {
			ResourceConfig
			Selectors json.RawMessage `json:"selectors,omitempty"`
		} `json:"resourceList"`
	}
	strictErrs, err := sigsjson.UnmarshalStrict(data, &raw, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return nil, fmt.Errorf("decode config: %s%w", position(data, err), err)
	}
	errs := strictErrs
	c := &Config{ResourceList: make([]ResourceConfig, len(raw.ResourceList))}
	for i, p := range raw.ResourceList {
		c.ResourceList[i] = p.ResourceConfig
		sels, err := decodeSelectors(p.Selectors)
		if err != nil {
			errs = append(errs, fmt.Errorf("resourceList[%d].%w", i, err))
		}
		c.ResourceList[i].Selectors = sels
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	return c, nil
}

// position is "line L, column C: " (of the byte where reading stopped) for
// a JSON syntax error or a value of the wrong type, else "".
func position(data []byte, err error) string {
	var offset int64
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if !json.Valid(data) {
		// The strict decoder's own syntax error carries no offset; the
		// standard library's does.
		var v any
		err = json.Unmarshal(data, &v)
	}
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	default:
		return ""
	}
	offset = min(offset, int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	// The offset counts the bytes read, the offending one included.
	col := offset - 1 - int64(bytes.LastIndexByte(before, '\n'))
	return fmt.Sprintf("line %d, column %d: ", line, max(col, 1))
}

// decodeSelectors reads one selector object or an array of them.
func decodeSelectors(data json.RawMessage) (SelectorList, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil, nil
	}
	if data[0] != '[' {
		s, err := decodeSelector(data)
		if err != nil {
			return nil, fmt.Errorf("selectors: %w", err)
		}
		return SelectorList{s}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("selectors: %w", err)
	}
	out := make(SelectorList, len(raws))
	var errs []error
	for k, raw := range raws {
		s, err := decodeSelector(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("selectors[%d]: %w", k, err))
		}
		out[k] = s
	}
	return out, errors.Join(errs...)
}

func decodeSelector(data []byte) (Selectors, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return Selectors{}, err
	}
	var f selectorFields
	if err := strictUnmarshal(data, &f); err != nil {
		return Selectors{}, err
	}
	s := Selectors(f)
	for k := range keys {
		s.present = append(s.present, k)
	}
	sort.Strings(s.present)
	return s, nil
}

// Load reads and parses a config file.
func Load(path, defaultPrefix string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, defaultPrefix)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes, defaults and validates a config.
func Parse(data []byte, defaultPrefix string) (*Config, error) {
	c, err := Decode(data)
	if err != nil {
		return nil, err
	}
	c.Default(defaultPrefix)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// strictUnmarshal decodes case-sensitively (the classic plugin's
// encoding/json would take "resourcename" for "resourceName"; we name it
// instead) and rejects unknown and duplicate fields.
func strictUnmarshal(data []byte, v any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// MarshalJSON writes a single selector as an object, as most configs do.
func (l SelectorList) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]Selectors(l))
}

// selectorFields is Selectors without methods, for plain decoding.
type selectorFields Selectors
