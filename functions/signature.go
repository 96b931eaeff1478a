// Package functions holds function definitions: an export of an artifact
// bound to a SQL signature, an environment and a compute pool.
package functions

import (
	"errors"
	"fmt"
	"strings"

	"github.com/udfhost/udfhost/internal/udf"
)

// ErrSignature is wrapped by every signature parse or type-check failure.
var ErrSignature = errors.New("invalid signature")

var typeNames = map[string]udf.Type{
	"INT": udf.Int, "INTEGER": udf.Int,
	"BIGINT":  udf.BigInt,
	"FLOAT":   udf.Float,
	"DOUBLE":  udf.Double,
	"BOOLEAN": udf.Boolean,
	"VARCHAR": udf.Varchar, "STRING": udf.Varchar,
	"BYTES": udf.Bytes, "VARBINARY": udf.Bytes,
}

// ParseSignature parses "(T1, T2, …) -> R", case-insensitively.
func ParseSignature(s string) (args []udf.Type, result udf.Type, err error) {
	params, ret, ok := strings.Cut(s, "->")
	if !ok {
		return nil, 0, fmt.Errorf("%w %q: want \"(ARG, …) -> RESULT\"", ErrSignature, s)
	}
	params = strings.TrimSpace(params)
	if !strings.HasPrefix(params, "(") || !strings.HasSuffix(params, ")") {
		return nil, 0, fmt.Errorf("%w %q: arguments must be in parentheses", ErrSignature, s)
	}
	params = strings.TrimSpace(params[1 : len(params)-1])
	if params != "" {
		for i, p := range strings.Split(params, ",") {
			t, err := parseType(p)
			if err != nil {
				return nil, 0, fmt.Errorf("%w %q: argument %d: %v", ErrSignature, s, i+1, err)
			}
			args = append(args, t)
		}
	}
	if len(args) > 64 {
		return nil, 0, fmt.Errorf("%w %q: %d arguments, at most 64", ErrSignature, s, len(args))
	}
	result, err = parseType(ret)
	if err != nil {
		return nil, 0, fmt.Errorf("%w %q: result: %v", ErrSignature, s, err)
	}
	return args, result, nil
}

func parseType(s string) (udf.Type, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if t, ok := typeNames[name]; ok {
		return t, nil
	}
	return 0, fmt.Errorf("unknown type %q (have INT, BIGINT, FLOAT, DOUBLE, BOOLEAN, VARCHAR, BYTES)", strings.TrimSpace(s))
}

// FormatSignature renders types in the canonical form ParseSignature reads.
func FormatSignature(args []udf.Type, result udf.Type) string {
	names := make([]string, len(args))
	for i, t := range args {
		names[i] = t.String()
	}
	return "(" + strings.Join(names, ", ") + ") -> " + result.String()
}
