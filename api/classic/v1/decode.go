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
	c, _, err := decode(data, false)
	return c, err
}

// DecodeLenient reads a config as the classic plugin would run it: a field
// it does not know is ignored, and returned as a warning naming its path.
// Duplicate fields, trailing data and wrong types are still errors.
func DecodeLenient(data []byte) (*Config, []error, error) {
	return decode(data, true)
}

func decode(data []byte, lenient bool) (*Config, []error, error) {
	var raw struct {
		ResourceList []struct {
			ResourceConfig
			Selectors json.RawMessage `json:"selectors,omitempty"`
		} `json:"resourceList"`
	}
	errs, warnings, err := unmarshal(data, &raw, lenient)
	if err != nil {
		return nil, nil, fmt.Errorf("decode config: %s%w", position(data, err), err)
	}
	c := &Config{ResourceList: make([]ResourceConfig, len(raw.ResourceList))}
	for i, p := range raw.ResourceList {
		c.ResourceList[i] = p.ResourceConfig
		sels, selWarnings, err := decodeSelectors(p.Selectors, lenient)
		if err != nil {
			errs = append(errs, fmt.Errorf("resourceList[%d].%w", i, err))
		}
		for _, w := range selWarnings {
			warnings = append(warnings, fmt.Errorf("resourceList[%d].%w", i, w))
		}
		c.ResourceList[i].Selectors = sels
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("decode config: %w", err)
	}
	return c, warnings, nil
}

// unmarshal decodes case-sensitively (the classic plugin's encoding/json
// would take "resourcename" for "resourceName"; we name it instead). It
// returns the field errors (duplicates always, unknown fields unless
// lenient), the unknown fields when lenient, and a fatal error (syntax,
// wrong type) on its own.
func unmarshal(data []byte, v any, lenient bool) (errs, warnings []error, err error) {
	if !lenient {
		errs, err = sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
		return errs, nil, err
	}
	if errs, err = sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowDuplicateFields); err != nil {
		return nil, nil, err
	}
	// The same input again, for the unknown fields alone.
	warnings, err = sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowUnknownFields)
	return errs, warnings, err
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
func decodeSelectors(data json.RawMessage, lenient bool) (SelectorList, []error, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil, nil, nil
	}
	if data[0] != '[' {
		s, warnings, err := decodeSelector(data, lenient)
		if err != nil {
			return nil, nil, fmt.Errorf("selectors: %w", err)
		}
		for i, w := range warnings {
			warnings[i] = fmt.Errorf("selectors: %w", w)
		}
		return SelectorList{s}, warnings, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, nil, fmt.Errorf("selectors: %w", err)
	}
	out := make(SelectorList, len(raws))
	var errs, warnings []error
	for k, raw := range raws {
		s, ws, err := decodeSelector(raw, lenient)
		if err != nil {
			errs = append(errs, fmt.Errorf("selectors[%d]: %w", k, err))
		}
		for _, w := range ws {
			warnings = append(warnings, fmt.Errorf("selectors[%d]: %w", k, w))
		}
		out[k] = s
	}
	return out, warnings, errors.Join(errs...)
}

func decodeSelector(data []byte, lenient bool) (Selectors, []error, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return Selectors{}, nil, err
	}
	var f selectorFields
	errs, warnings, err := unmarshal(data, &f, lenient)
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return Selectors{}, nil, err
	}
	s := Selectors(f)
	for k := range keys {
		if selectorKeys[k] { // an ignored unknown key is no selector
			s.present = append(s.present, k)
		}
	}
	sort.Strings(s.present)
	return s, warnings, nil
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

// Parse decodes strictly, defaults and validates a config.
func Parse(data []byte, defaultPrefix string) (*Config, error) {
	c, err := Decode(data)
	if err != nil {
		return nil, err
	}
	return c, c.complete(defaultPrefix)
}

// ParseLenient is Parse with unknown fields ignored and returned as
// warnings, as the daemon reads its config: a field the classic plugin
// ignores must not stop it.
func ParseLenient(data []byte, defaultPrefix string) (*Config, []error, error) {
	c, warnings, err := DecodeLenient(data)
	if err != nil {
		return nil, nil, err
	}
	if err := c.complete(defaultPrefix); err != nil {
		return nil, warnings, err
	}
	return c, warnings, nil
}

func (c *Config) complete(defaultPrefix string) error {
	c.Default(defaultPrefix)
	return c.Validate()
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
