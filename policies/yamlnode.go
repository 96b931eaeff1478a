package policies

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/udfhost/udfhost/internal/names"
)

// Error is one problem of a policy file, at the line and column (1-based)
// of the node it is about. Its message is one line.
type Error struct {
	File      string
	Line, Col int
	// Msg names the field (a path like pools[1].memory_pages, indices
	// from 0) and the problem.
	Msg string
}

func (e *Error) Error() string {
	if e.File == "" {
		return e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// doc is a parsed policy file: its name for messages and its YAML tree.
type doc struct {
	file    string
	anchors map[string]ast.Node
}

// errAt returns the problem msg about node n.
func (d *doc) errAt(n ast.Node, format string, args ...any) *Error {
	line, col := position(n)
	return &Error{File: d.file, Line: line, Col: col, Msg: oneLine(fmt.Sprintf(format, args...))}
}

// oneLine keeps an error on one line whatever a value in it holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// position is where a node starts as a reader sees it: a block mapping's
// token is the ':' of its first pair, so its first key is used instead.
func position(n ast.Node) (line, col int) {
	switch v := n.(type) {
	case nil:
		return 1, 1
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 {
			return position(v.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return position(v.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 1, 1
	}
	return tk.Position.Line, tk.Position.Column
}

// parse turns data into the document's top-level node, with the parser's
// own errors (syntax, duplicate keys) in the same FILE:LINE:COL form.
func parse(file string, data []byte) (*doc, ast.Node, error) {
	d := &doc{file: file, anchors: map[string]ast.Node{}}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			p := ye.GetToken().Position
			return nil, nil, &Error{File: file, Line: p.Line, Col: p.Column, Msg: oneLine(ye.GetMessage())}
		}
		return nil, nil, &Error{File: file, Line: 1, Col: 1, Msg: oneLine(err.Error())}
	}
	var body ast.Node
	for _, dn := range f.Docs {
		if dn.Body == nil {
			continue
		}
		if body != nil {
			return nil, nil, d.errAt(dn.Body, "a policy file holds one YAML document; this is a second")
		}
		body = dn.Body
	}
	if body == nil {
		return nil, nil, &Error{File: file, Line: 1, Col: 1, Msg: "the policy file is empty; it needs at least org and environments"}
	}
	ast.Walk(anchorCollector(d.anchors), body)
	return d, body, nil
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// resolve strips anchors and tags and follows aliases, so that every
// check sees the value itself (at the position where it is written, or
// where its anchor is).
func (d *doc) resolve(n ast.Node) ast.Node {
	for range 16 { // an alias of an alias of ...; cycles are refused by the parser
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil {
				return n
			}
			target, ok := d.anchors[v.Value.GetToken().Value]
			if !ok {
				return n
			}
			n = target
		default:
			return n
		}
	}
	return n
}

// kindOf names a node's type for "want X, got Y" messages.
func kindOf(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.NullNode, nil:
		return "nothing (null)"
	case *ast.AliasNode:
		return "an unknown alias"
	}
	return names.Quote(n.GetToken().Value)
}

// field is one key: value pair of a mapping.
type field struct {
	key   string
	keyN  ast.Node
	value ast.Node
}

// fields returns the pairs of a mapping node, refusing merge keys (they
// would hide where a value came from) and any key not in known.
func (d *doc) fields(n ast.Node, path string, known ...string) ([]field, error) {
	var pairs []*ast.MappingValueNode
	switch v := d.resolve(n).(type) {
	case *ast.MappingNode:
		pairs = v.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{v}
	default:
		return nil, d.errAt(n, "%s: want a mapping, got %s", path, kindOf(v))
	}
	out := make([]field, 0, len(pairs))
	for _, kv := range pairs {
		if kv.Key.IsMergeKey() {
			return nil, d.errAt(kv.Key, "%s: merge keys (<<) are not supported; write the fields out", path)
		}
		key, ok := scalarText(d.resolve(kv.Key))
		if !ok {
			return nil, d.errAt(kv.Key, "%s: a key must be a plain string", path)
		}
		if known != nil && !slices.Contains(known, key) {
			return nil, d.errAt(kv.Key, "%s: unknown field %s; known fields: %s", join(path, pathKey(key)), names.Quote(key), strings.Join(known, ", "))
		}
		out = append(out, field{key: key, keyN: kv.Key, value: kv.Value})
	}
	return out, nil
}

// list returns the items of a sequence node.
func (d *doc) list(n ast.Node, path string) ([]ast.Node, error) {
	seq, ok := d.resolve(n).(*ast.SequenceNode)
	if !ok {
		return nil, d.errAt(n, "%s: want a list, got %s", path, kindOf(d.resolve(n)))
	}
	return seq.Values, nil
}

// str returns a scalar's text: a string, or the source text of a number
// or boolean (a name like 2024 is a string here).
func (d *doc) str(n ast.Node, path string) (string, error) {
	s, ok := scalarText(d.resolve(n))
	if !ok {
		return "", d.errAt(n, "%s: want a string, got %s", path, kindOf(d.resolve(n)))
	}
	return s, nil
}

func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// join builds a field path: "pools[1]" + "memory_pages".
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// pathKey is key as a field path shows it: as it is when it is a plain
// word, else quoted and cut short.
func pathKey(key string) string {
	if key == "" || len(key) > 64 {
		return names.Quote(key)
	}
	for _, c := range []byte(key) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '*') {
			return names.Quote(key)
		}
	}
	return key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
