// Package errcodetest holds what tests of every surface share about error
// answers: the check that a message shows no Go type name.
package errcodetest

import "regexp"

// goType matches what Go's own descriptions of types look like inside a
// message: a package-qualified name (action.Tool, json.RawMessage), a
// builtin numeric type, a composite type, or encoding/json's phrasing.
var goType = regexp.MustCompile(`\b[a-z][a-z0-9]*\.[A-Z][A-Za-z0-9]*\b|\b(u?int(8|16|32|64)?|float(32|64)|complex(64|128)|uintptr|rune)\b|map\[|\[\][A-Za-z*]|\bstruct ?\{|\binterface ?\{|Go (struct field|value of type)`)

// GoTypeName returns the first Go type name in msg, or "".
func GoTypeName(msg string) string { return goType.FindString(msg) }
