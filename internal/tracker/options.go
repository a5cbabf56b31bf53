package tracker

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as "10ms", "5s" in JSON, YAML and flags.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 500ms, 5s, 1m)", string(b))
	}
	*d = Duration(v)
	return nil
}

// String implements fmt.Stringer.
func (d Duration) String() string { return time.Duration(d).String() }

// Option describes one config key of a tracker kind.
type Option struct {
	Key     string // JSON/YAML key, e.g. "min_duration"
	Flag    string // CLI flag, e.g. "min-duration"
	Help    string
	Type    string // "string", "bool", "int", "uint", "duration", "list"
	Default string
}

// Options lists the config keys of cfg (a pointer to a config struct),
// embedded structs flattened, in declaration order.
func Options(cfg Config) []Option {
	var out []Option
	walkFields(reflect.ValueOf(cfg).Elem(), func(key, help string, v reflect.Value) {
		out = append(out, Option{
			Key:     key,
			Flag:    strings.ReplaceAll(key, "_", "-"),
			Help:    help,
			Type:    typeName(v.Type()),
			Default: formatValue(v),
		})
	})
	return out
}

// SetOption parses value (flag syntax: lists are comma-separated) into the
// field of cfg with that key.
func SetOption(cfg Config, key, value string) error {
	found := false
	var err error
	walkFields(reflect.ValueOf(cfg).Elem(), func(k, _ string, v reflect.Value) {
		if k != key || found {
			return
		}
		found = true
		if perr := parseInto(v, value); perr != nil {
			err = fmt.Errorf("%s: %w", key, perr)
		}
	})
	if !found {
		return fmt.Errorf("unknown key %q", key)
	}
	return err
}

// HasOption reports whether cfg has a key.
func HasOption(cfg Config, key string) bool {
	found := false
	walkFields(reflect.ValueOf(cfg).Elem(), func(k, _ string, _ reflect.Value) {
		found = found || k == key
	})
	return found
}

func walkFields(v reflect.Value, fn func(key, help string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			walkFields(v.Field(i), fn)
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if key == "-" || key == "" {
			continue
		}
		fn(key, f.Tag.Get("help"), v.Field(i))
	}
}

var durationType = reflect.TypeOf(Duration(0))

func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		return "list"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "uint"
	}
	return "string"
}

func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return Duration(v.Int()).String()
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			return ""
		}
		return formatValue(v.Elem())
	case v.Kind() == reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatValue(v.Index(i))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

func parseInto(v reflect.Value, s string) error {
	if v.Type() == durationType {
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := parseInto(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		var parts []string
		if s != "" {
			parts = strings.Split(s, ",")
		}
		sl := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := parseInto(sl.Index(i), strings.TrimSpace(p)); err != nil {
				return err
			}
		}
		v.Set(sl)
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q (want a whole number that fits %d bits)", s, v.Type().Bits())
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid number %q (want a non-negative whole number that fits %d bits)", s, v.Type().Bits())
		}
		v.SetUint(n)
	default:
		return fmt.Errorf("unsupported config type %s", v.Type())
	}
	return nil
}
