package strict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxJSONDepth bounds the nesting of a JSON document.
const maxJSONDepth = 64

// ParseJSON parses one JSON value into the node tree the YAML parser would
// make for it, with line numbers, so that Decode checks it like YAML.
// Malformed JSON, nesting deeper than 64 levels and data after the value are
// errors.
func ParseJSON(data []byte) (*yaml.Node, error) {
	p := &jsonParser{dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	for i, c := range data {
		if c == '\n' {
			p.lineStarts = append(p.lineStarts, i+1)
		}
	}
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, &Error{Line: p.line(), Msg: "invalid JSON: unexpected data after the top-level value"}
	}
	return n, nil
}

type jsonParser struct {
	dec        *json.Decoder
	lineStarts []int // offsets where lines 2, 3, ... start
}

// line is the 1-based line of the decoder's position.
func (p *jsonParser) line() int {
	off := int(p.dec.InputOffset())
	return 1 + sort.SearchInts(p.lineStarts, off+1)
}

func (p *jsonParser) token() (json.Token, int, error) {
	tok, err := p.dec.Token()
	line := p.line()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, line, &Error{Line: line, Msg: "invalid JSON: unexpected end of input"}
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, line, &Error{Line: line, Msg: "invalid JSON: " + se.Error()}
		}
		return nil, line, &Error{Line: line, Msg: "invalid JSON: " + err.Error()}
	}
	return tok, line, nil
}

func (p *jsonParser) value(depth int) (*yaml.Node, error) {
	tok, line, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.node(tok, line, depth)
}

func (p *jsonParser) node(tok json.Token, line, depth int) (*yaml.Node, error) {
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, &Error{Line: line, Msg: fmt.Sprintf("invalid JSON: nested deeper than %d levels", maxJSONDepth)}
		}
		switch t {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
			for p.dec.More() {
				ktok, kline, err := p.token()
				if err != nil {
					return nil, err
				}
				k, ok := ktok.(string)
				if !ok {
					return nil, &Error{Line: kline, Msg: "invalid JSON: object key is not a string"}
				}
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: k, Line: kline}, v)
			}
			if _, _, err := p.token(); err != nil { // '}'
				return nil, err
			}
			return n, nil
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line}
			for p.dec.More() {
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
			if _, _, err := p.token(); err != nil { // ']'
				return nil, err
			}
			return n, nil
		}
		return nil, &Error{Line: line, Msg: fmt.Sprintf("invalid JSON: unexpected %q", rune(t))}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: t, Line: line}, nil
	case json.Number:
		tag := "!!int"
		for _, c := range []byte(t) {
			if c == '.' || c == 'e' || c == 'E' {
				tag = "!!float"
				break
			}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t), Line: line}, nil
	case bool:
		v := "false"
		if t {
			v = "true"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v, Line: line}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: line}, nil
	}
	return nil, &Error{Line: line, Msg: fmt.Sprintf("invalid JSON: unexpected token %v", tok)}
}

// ParseYAML parses a YAML document into its root node. An empty document
// gives a nil node; more than one document is an error.
func ParseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlSyntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlSyntaxError(err)
		}
		return nil, &Error{Line: extra.Line, Msg: "more than one YAML document (---); put everything in one"}
	}
	return Resolve(&doc), nil
}

// yamlSyntaxError turns "yaml: line 3: did not find expected key" into an
// Error with the line.
func yamlSyntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if _, serr := fmt.Sscanf(msg, "line %d:", &line); serr == nil {
		_, rest, _ := strings.Cut(msg, ":")
		return &Error{Line: line, Msg: "invalid YAML: " + strings.TrimSpace(rest)}
	}
	return &Error{Msg: "invalid YAML: " + msg}
}
