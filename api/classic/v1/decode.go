package v1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// Decode reads a classic config strictly: unknown fields, trailing data and
// wrong types are errors. It neither defaults nor validates.
func Decode(data []byte) (*Config, error) {
	var c Config
	if err := strictUnmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	return &c, nil
}

// Load reads, decodes, defaults and validates a config file.
func Load(path, defaultPrefix string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Default(defaultPrefix)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the top-level object")
	}
	return nil
}

// UnmarshalJSON accepts one selector object or an array of them.
func (l *SelectorList) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*l = nil
		return nil
	}
	var raws []json.RawMessage
	if len(data) > 0 && data[0] == '[' {
		if err := json.Unmarshal(data, &raws); err != nil {
			return err
		}
	} else {
		raws = []json.RawMessage{data}
	}
	out := make(SelectorList, 0, len(raws))
	for i, raw := range raws {
		var s Selectors
		if err := s.unmarshalStrict(raw); err != nil {
			if len(raws) > 1 || data[0] == '[' {
				return fmt.Errorf("selectors[%d]: %w", i, err)
			}
			return err
		}
		out = append(out, s)
	}
	*l = out
	return nil
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

func (s *Selectors) unmarshalStrict(data []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return err
	}
	var f selectorFields
	if err := strictUnmarshal(data, &f); err != nil {
		return err
	}
	*s = Selectors(f)
	for k := range keys {
		s.present = append(s.present, k)
	}
	sort.Strings(s.present)
	return nil
}
