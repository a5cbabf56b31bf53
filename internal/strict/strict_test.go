package strict

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q", b)
	}
	*d = Duration(v)
	return nil
}

type Base struct {
	Pid  uint32  `json:"pid,omitempty" yaml:"pid,omitempty"`
	Uid  *uint32 `json:"uid,omitempty" yaml:"uid,omitempty"`
	Comm string  `json:"comm,omitempty" yaml:"comm,omitempty"`
}

type conf struct {
	Base   `yaml:",inline"`
	Follow bool              `json:"follow"`
	Every  Duration          `json:"every"`
	Ports  []uint16          `json:"ports"`
	Level  int8              `json:"level"`
	Ratio  float64           `json:"ratio"`
	Inner  *inner            `json:"inner"`
	Named  map[string]inner  `json:"named"`
	Label  string            `yaml:"label"` // yaml tag only
	hidden int               //nolint:unused // unexported: never a key
	Skip   string            `json:"-"`
	Extra  map[string]string `json:"extra"`
}

type inner struct {
	A int `json:"a"`
}

func decodeYAML(t *testing.T, doc string) (conf, error) {
	t.Helper()
	n, err := ParseYAML([]byte(doc))
	if err != nil {
		return conf{}, err
	}
	c := conf{Follow: true, Level: 3}
	err = Decode(n, &c, "")
	return c, err
}

func TestDecodeYAML(t *testing.T) {
	c, err := decodeYAML(t, `
pid: 42
uid: 0
comm: bash
follow: false
every: 1500ms
ports: [80, 0x1bb]
ratio: 0.5
inner: {a: -7}
named:
  x: {a: 1}
label: hi
extra: {k: v}
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pid != 42 || c.Uid == nil || *c.Uid != 0 || c.Comm != "bash" || c.Follow || c.Every != Duration(1500*time.Millisecond) {
		t.Errorf("decoded %+v", c)
	}
	if len(c.Ports) != 2 || c.Ports[1] != 443 || c.Ratio != 0.5 || c.Inner == nil || c.Inner.A != -7 {
		t.Errorf("decoded %+v", c)
	}
	if c.Named["x"].A != 1 || c.Label != "hi" || c.Extra["k"] != "v" || c.Level != 3 {
		t.Errorf("decoded %+v (level keeps its default)", c)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		doc, want string
	}{
		{"pid: 1\npidd: 2\n", "line 2: pidd: unknown key (known: comm, every, extra, follow, inner, label, level, named, pid, ports, ratio, uid)"},
		{"pid: abc\n", `line 1: pid: want a non-negative whole number that fits 32 bits, got "abc"`},
		{"pid: -1\n", "line 1: pid: want a non-negative whole number that fits 32 bits, got -1"},
		{"pid: 4294967296\n", "line 1: pid: want a non-negative whole number that fits 32 bits, got 4294967296"},
		{"pid: 1.5\n", "line 1: pid: want a non-negative whole number that fits 32 bits, got 1.5"},
		{"level: 200\n", "line 1: level: want a whole number that fits 8 bits, got 200"},
		{"follow: yes\n", `line 1: follow: want true or false, got "yes"`},
		{"follow: 1\n", "line 1: follow: want true or false, got 1"},
		{"every: 5\n", `line 1: every: invalid duration "5"`},
		{"every: [1]\n", "line 1: every: want a duration (e.g. 500ms, 5s, 1m), got a list"},
		{"ports: 80\n", "line 1: ports: want a list, got 80"},
		{"ports: [80, 70000]\n", "line 1: ports[1]: want a non-negative whole number that fits 16 bits, got 70000"},
		{"inner:\n  a: 1\n  b: 2\n", "line 3: inner.b: unknown key (known: a)"},
		{"named:\n  x:\n    z: 1\n", "line 3: named.x.z: unknown key (known: a)"},
		{"pid: 1\npid: 2\n", "line 2: pid: key given twice (first on line 1)"},
		{"comm: {a: 1}\n", "line 1: comm: want a string, got a mapping"},
		{"- 1\n", "line 1: want a mapping of keys to values, got a list"},
		{"Skip: x\n", "line 1: Skip: unknown key"},
		{"hidden: 1\n", "line 1: hidden: unknown key"},
		{"a: &x {pid: 1}\n<<: *x\n", "merge keys (<<) are not supported"},
		{"pid: [\n", "invalid YAML"},
		{"pid: 1\n---\npid: 2\n", "more than one YAML document"},
	} {
		_, err := decodeYAML(t, tc.doc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got error %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestNullKeepsDefaults(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "~\n"} {
		c, err := decodeYAML(t, doc)
		if err != nil || !c.Follow || c.Level != 3 {
			t.Errorf("%q: %+v, %v", doc, c, err)
		}
	}
	c, err := decodeYAML(t, "uid: null\nports: ~\n")
	if err != nil || c.Uid != nil || c.Ports != nil {
		t.Errorf("nulls: %+v, %v", c, err)
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("defs:\n  a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("bomb: [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]\n")
	n, err := ParseYAML([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Defs yaml.Node             `json:"defs"`
		Bomb [][][][][][][][][]int `json:"bomb"`
	}
	start := time.Now()
	err = Decode(n, &d, "")
	if err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Errorf("got %v, want document too large", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %s", el)
	}
}

func TestJSON(t *testing.T) {
	n, err := ParseJSON([]byte("{\n  \"pid\": 7,\n  \"uid\": 1000,\n\t\"follow\": false,\n  \"every\": \"2s\",\n  \"ports\": [1, 2],\n  \"ratio\": 1e-3,\n  \"comm\": \"a\\\"b\\u00e9\",\n  \"inner\": null\n}"))
	if err != nil {
		t.Fatal(err)
	}
	c := conf{Follow: true}
	if err := Decode(n, &c, ""); err != nil {
		t.Fatal(err)
	}
	if c.Pid != 7 || *c.Uid != 1000 || c.Follow || c.Every != Duration(2*time.Second) || len(c.Ports) != 2 || c.Ratio != 1e-3 || c.Comm != "a\"bé" || c.Inner != nil {
		t.Errorf("decoded %+v", c)
	}

	for _, tc := range []struct{ doc, want string }{
		{"{\n\"pid\": \"7\"\n}", `line 2: pid: want a non-negative whole number that fits 32 bits, got "7"`},
		{"{\"follow\": \"true\"}", `line 1: follow: want true or false, got "true"`},
		{"{\"pid\": 1, \"pid\": 2}", "pid: key given twice"},
		{"{\"nope\": 1}", "line 1: nope: unknown key"},
		{"{\"pid\": 1", "invalid JSON: unexpected end of input"},
		{"{\"pid\": 1} x", "invalid JSON"},
		{"{\"pid\": 1} {}", "unexpected data after the top-level value"},
		{"{pid: 1}", "invalid JSON"},
		{"", "invalid JSON: unexpected end of input"},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), "nested deeper than 64 levels"},
		{"{\n\n\"ports\": [1,\n -1]}", "line 4: ports[1]: want a non-negative whole number"},
	} {
		n, err := ParseJSON([]byte(tc.doc))
		if err == nil {
			var c conf
			err = Decode(n, &c, "")
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got error %v, want %q", tc.doc, err, tc.want)
		}
		var se *Error
		if err != nil && !errors.As(err, &se) {
			t.Errorf("%q: error %T is not a *strict.Error", tc.doc, err)
		}
	}
}
