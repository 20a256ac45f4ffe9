// Package sqlstmt reads SQL text as a database splits it into statements, so that
// policies match DROP/**/TABLE and DeLeTe\nFROM t as the statements they
// are. Each statement is normalised: comments removed, whitespace runs made
// one space, keywords and names lower-cased, string literals replaced by ?
// (their content is data, and an attacker's to choose). Dialects disagree on
// a few points, and the text is read both ways when they matter: MySQL
// treats # as a comment, \ as an escape inside literals and runs the content
// of /*! ... */ comments; standard SQL and PostgreSQL do not. SQL that runs
// other SQL given as a string (EXECUTE '...', PREPARE s FROM '...', a
// PostgreSQL $$ body) has that string read as statements too.
package sqlstmt

import (
	"slices"
	"strings"
)

// maxSQLDepth bounds how deeply SQL strings holding SQL are read.
const maxSQLDepth = 8

// Statements returns the normalised statements of src, in every reading.
func Statements(src string) []string {
	out := sqlRead(src, false, 0)
	if strings.ContainsAny(src, `\#`) || strings.Contains(src, "/*!") || strings.Contains(src, `"`) {
		seen := make(map[string]bool, len(out))
		for _, s := range out {
			seen[s] = true
		}
		for _, s := range sqlRead(src, true, 0) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// Injected returns how s reads pasted into SQL by a tool that builds its
// statements by concatenation: as is (after WHERE id =), after an opening '
// and after an opening ". Each reading is normalised as by Statements,
// its statements joined by "; ", so that what follows the value stays next
// to it: x'; DROP TABLE t reads "?; drop table t".
func Injected(s string) []string {
	var out []string
	for _, q := range []string{"", "'", `"`} {
		for _, mysql := range []bool{false, true} {
			// At depth maxSQLDepth, SQL inside strings is not read: the
			// injected value is what matters here.
			r := strings.Join(sqlRead(q+s, mysql, maxSQLDepth), "; ")
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// sqlRead reads src in one dialect: mysql, or standard SQL.
func sqlRead(src string, mysql bool, depth int) []string {
	var out, nested []string
	var b strings.Builder
	space := false
	execComment := false    // inside MySQL /*! ... */
	var prev1, prev2 string // the last two words, for EXECUTE '...'
	word := func(w string) {
		prev2, prev1 = prev1, w
	}
	emit := func(s string) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(s)
	}
	end := func() {
		if s := strings.TrimSpace(b.String()); s != "" {
			out = append(out, s)
		}
		b.Reset()
		space = false
		prev1, prev2 = "", ""
	}
	literal := func(content string) {
		emit("?")
		// A string in a statement that runs SQL given as a string
		// (EXECUTE '...', EXEC('...'), EXECUTE format('...'), PREPARE s
		// FROM '...', sp_executesql N'...') is SQL.
		st := strings.TrimSpace(b.String())
		if prev1 == "execute" || prev1 == "exec" || prev1 == "immediate" || prev1 == "(" && (prev2 == "exec" || prev2 == "execute") ||
			strings.HasPrefix(st, "exec") || strings.HasPrefix(st, "prepare ") || strings.Contains(st, "sp_executesql") {
			if depth < maxSQLDepth {
				nested = append(nested, sqlRead(content, mysql, depth+1)...)
			}
		}
		word("?")
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			space = true
			i++
		case c == ';':
			end()
			i++
		case c == '-' && strings.HasPrefix(src[i:], "--"), c == '#' && mysql:
			for i < len(src) && src[i] != '\n' {
				i++
			}
			space = true
		case c == '/' && strings.HasPrefix(src[i:], "/*!") && mysql:
			// MySQL runs what an executable comment holds.
			i += 3
			for i < len(src) && '0' <= src[i] && src[i] <= '9' {
				i++
			}
			execComment = true
			space = true
		case c == '*' && execComment && strings.HasPrefix(src[i:], "*/"):
			execComment = false
			i += 2
			space = true
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			if e := strings.Index(src[i+2:], "*/"); e >= 0 {
				i += e + 4
			} else {
				i = len(src)
			}
			space = true
		case c == '\'' || c == '"' && mysql:
			content, n := sqlLiteral(src[i:], c, mysql)
			literal(content)
			i += n
		case c == '"' || c == '`':
			// A quoted name, kept as written.
			e := len(src)
			if j := strings.IndexByte(src[i+1:], c); j >= 0 {
				e = i + j + 2
			}
			emit(src[i:e])
			word(src[i:e])
			i = e
		case c == '$' && !mysql && (i == 0 || !isNameByte(src[i-1])):
			if tag, ok := dollarTag(src[i:]); ok {
				body := src[i+len(tag):]
				e := strings.Index(body, tag)
				if e < 0 {
					e = len(body)
				}
				emit("?")
				// A $$ body is a function or DO block: SQL.
				if depth < maxSQLDepth {
					nested = append(nested, sqlRead(body[:e], mysql, depth+1)...)
				}
				word("?")
				i += len(tag) + min(len(body), e+len(tag))
				continue
			}
			emit("$")
			i++
		case isNameByte(c) || c >= 0x80:
			j := i + 1
			for j < len(src) && (isNameByte(src[j]) || src[j] >= 0x80 || src[j] == '$') {
				j++
			}
			w := lowerASCII(src[i:j])
			emit(w)
			word(w)
			i = j
		default:
			emit(src[i : i+1])
			if c == '(' {
				word("(")
			}
			i++
		}
	}
	end()
	return append(out, nested...)
}

// sqlLiteral reads the literal opened by quote at s[0] and returns its
// content and length. An unterminated literal runs to the end.
func sqlLiteral(s string, quote byte, backslash bool) (string, int) {
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case backslash && c == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			i += 2
		case c == quote && i+1 < len(s) && s[i+1] == quote:
			b.WriteByte(quote)
			i += 2
		case c == quote:
			return b.String(), i + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), len(s)
}

// dollarTag returns the $tag$ (or $$) opening s, if any.
func dollarTag(s string) (string, bool) {
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '$' {
			return s[:i+1], true
		}
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 1 && '0' <= c && c <= '9') {
			return "", false
		}
	}
	return "", false
}

// isNameByte reports whether c may be part of an unquoted SQL identifier or
// keyword (bytes of 0x80 and above are too, as UTF-8 letters).
func isNameByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// lowerASCII lowers A-Z only: SQL folds the case of keywords and unquoted
// names, and other letters are left as written.
// Bytes are mapped one by one, so that text which is not UTF-8 stays as it
// was.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
