package provenance

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinLength is the shortest normalised value, in characters, that carries
// provenance. Shorter values ("yes", "10", "EUR") occur everywhere; matching
// them would say nothing.
const MinLength = 4

// Normalize is the form in which content is kept and values are matched,
// so that the same value written two ways is found: letters are lower case
// (e-mail addresses and host names are case-insensitive, and so are the
// words of a memo for this purpose), whitespace is dropped (an IBAN written
// in blocks of four is the same IBAN, a line break inside an address the
// same address), quotation marks and backslashes beside whitespace (the
// escaped line breaks of folded YAML and shell lines) are dropped, a hyphen between two digits
// is dropped (card and account numbers written in groups), and the URL
// prefixes "http://", "https://" and "www." are dropped wherever they occur.
// Invisible characters go and full-width forms are read as ASCII (fold).
// Nothing else changes: punctuation that separates the parts of an address
// (".", "@", "/", ":") stays, so "evil.com" never matches "evilcom".
func Normalize(s string) string {
	s = fold(s)
	var b strings.Builder
	b.Grow(len(s))
	prevDigit := false // the last byte written is a digit
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				continue
			case c == '"' || c == '\'' || c == '`':
				continue
			case c == '\\' && (i < len(s) && isSpaceByte(s[i]) || i >= 2 && isSpaceByte(s[i-2])):
				// An escaped line break, as YAML and shells fold long
				// lines: the text goes on after it.
				continue
			case c == '-' && prevDigit && i < len(s) && s[i] >= '0' && s[i] <= '9':
				continue
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			}
			b.WriteByte(c)
			prevDigit = c >= '0' && c <= '9'
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if unicode.IsSpace(r) || isQuote(r) || r == '\u200b' || r == '\u200c' || r == '\u200d' || r == '\ufeff' {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
		prevDigit = false
	}
	out := b.String()
	if strings.Contains(out, "http") || strings.Contains(out, "www.") {
		out = strings.ReplaceAll(out, "https://", "")
		out = strings.ReplaceAll(out, "http://", "")
		out = strings.ReplaceAll(out, "www.", "")
	}
	return out
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isQuote(r rune) bool {
	switch r {
	case '\u2018', '\u2019', '\u201a', '\u201b', '\u201c', '\u201d', '\u201e', '\u201f', '\u00ab', '\u00bb', '\u2039', '\u203a':
		return true
	}
	return false
}

// normalizeValue is Normalize for a value looked up, which also sheds what
// surrounds a value written alone: a "mailto:" prefix, a trailing slash of a
// URL, sentence punctuation at either end.
func normalizeValue(s string) string {
	v := Normalize(s)
	v = strings.TrimPrefix(v, "mailto:")
	v = strings.TrimRight(v, "/.,;:!?)]}>")
	v = strings.TrimLeft(v, "([{<")
	return v
}

// Long reports whether a value is long enough, once normalised, to carry
// provenance by Sources and Untrusted.
func Long(value string) bool { return long(normalizeValue(value)) }

// long reports whether a normalised value is long enough to carry
// provenance.
func long(v string) bool {
	if len(v) < MinLength {
		return false
	}
	return len(v) >= MinLength*utf8.UTFMax || utf8.RuneCountInString(v) >= MinLength
}

// fold drops the characters a reader does not see (Unicode format
// characters: zero-width spaces and joiners, soft hyphens, direction marks,
// tags) and reads full-width ASCII forms as ASCII, as a model copying a
// value does. Otherwise a result could write the value it asks for so that
// it never matches the plain value of the call it causes.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '\uff01' && r <= '\uff5e':
			return r - 0xfee0
		case unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, s)
}
