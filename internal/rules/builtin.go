package rules

import _ "embed"

//go:embed builtin.yaml
var builtinYAML []byte

// Builtin is the built-in rule pack (builtin.yaml, documented in
// docs/rules.md).
func Builtin() Source { return Source{Name: BuiltinName, Data: builtinYAML} }
