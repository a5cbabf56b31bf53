package rules

import (
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// functions are the CEL functions rules get besides the standard library
// and the strings, math, sets and lists extensions.
func functions() cel.EnvOption {
	return cel.Function("startsWithAny",
		cel.MemberOverload("string_starts_with_any_list_string",
			[]*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
			cel.BinaryBinding(startsWithAny)))
}

// startsWithAny is `s.startsWithAny(prefixes)`: whether s starts with one
// of the prefixes. It is what `prefixes.exists(p, s.startsWith(p))` says,
// without a comprehension per event.
func startsWithAny(lhs, rhs ref.Val) ref.Val {
	s, ok := lhs.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(lhs)
	}
	if strs, ok := rhs.Value().([]string); ok {
		for _, p := range strs {
			if strings.HasPrefix(string(s), p) {
				return types.True
			}
		}
		return types.False
	}
	l, ok := rhs.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(rhs)
	}
	for it := l.Iterator(); it.HasNext() == types.True; {
		p, ok := it.Next().(types.String)
		if !ok {
			return types.MaybeNoSuchOverloadErr(p)
		}
		if strings.HasPrefix(string(s), string(p)) {
			return types.True
		}
	}
	return types.False
}
