package provenance

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Instruction lookups ask whether untrusted content spelled out a call: a
// value next to the call's own verb ("delete the file 13", "send the link
// example.org to Ann"). Word boundaries matter here, and the matching form
// (Normalize) drops whitespace, so each entry also keeps its words: its
// text in lower case, split into tokens at whitespace, quotation marks and
// escaped line breaks, each token shorn of the punctuation around it, one
// sentence a line. A value is then found as whole tokens, so a short value
// ("13") matches the id 13 and not 2013 or 05-13.

// InstructionWindow is how many words either side of a value, within its
// sentence, a verb may stand to count as instructing it.
const InstructionWindow = 12

// maxVerbs bounds the verbs a lookup checks (a tool's name, split into
// words, is a handful of them).
const maxVerbs = 16

// maxOccurrences bounds the occurrences of a value one lookup checks for a
// verb nearby: a value that untrusted content repeats more often than that
// ("a a a ... delete") counts as instructed, failing closed, rather than
// letting that content set the time a decision takes.
const maxOccurrences = 256

// wordsOf is the words form of a text: tokens joined by a space, sentences
// by a line break.
func wordsOf(s string) string {
	s = fold(s)
	var b strings.Builder
	b.Grow(len(s))
	var tok []byte
	open := false // the current sentence has a token
	newlines := 0 // line breaks since the last token
	endSentence := func() {
		if open {
			b.WriteByte('\n')
			open = false
		}
	}
	flush := func() {
		raw := string(tok)
		tok = tok[:0]
		if t := trimToken(raw); t != "" {
			if open {
				b.WriteByte(' ')
			}
			b.WriteString(t)
			open = true
		}
		if sentenceEnd(raw) {
			endSentence()
		}
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		// An escaped line break or tab of an encoded result (JSON, a repr)
		// separates words as a real one does.
		if r == '\\' && i+1 < len(s) && (s[i+1] == 'n' || s[i+1] == 'r' || s[i+1] == 't') {
			r, n = ' ', 2
			if s[i+1] == 'n' {
				r = '\n'
			}
		}
		i += n
		switch {
		case r == '\n':
			flush()
			// A blank line ends a sentence, as a paragraph does.
			if newlines++; newlines >= 2 {
				endSentence()
			}
		case unicode.IsSpace(r):
			flush()
		case isQuote(r) || r == '"' || r == '\'' || r == '`' || r == '\\':
			flush()
			newlines = 0
		default:
			tok = utf8.AppendRune(tok, unicode.ToLower(r))
			newlines = 0
		}
	}
	flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// sentenceEnd reports whether a raw token ends a sentence: it ends in a
// full stop, an exclamation or question mark or a semicolon (closing
// brackets aside).
func sentenceEnd(raw string) bool {
	raw = strings.TrimRight(raw, ")]}>")
	return raw != "" && strings.ContainsRune(".!?;", rune(raw[len(raw)-1]))
}

// trimToken sheds the punctuation around a token and the URL prefixes
// Normalize drops, so that "(www.example.org)." is "example.org".
func trimToken(t string) string {
	t = strings.TrimFunc(t, func(r rune) bool {
		return unicode.IsPunct(r) && r != '@' && r != '#' && r != '%' || unicode.IsSymbol(r) && r != '$' && r != '+'
	})
	t = strings.TrimPrefix(t, "mailto:")
	t = strings.TrimPrefix(t, "https://")
	t = strings.TrimPrefix(t, "http://")
	t = strings.TrimPrefix(t, "www.")
	return strings.TrimRight(t, "/")
}

// valueWords is a looked-up value as the tokens it must match.
func valueWords(v string) []string {
	w := wordsOf(v)
	if w == "" {
		return nil
	}
	return strings.Fields(w)
}

// Instructed reports whether untrusted content of the session spelled out
// the value next to one of the verbs: the value occurs there as whole
// words, and within InstructionWindow words of it, in the same sentence,
// stands a verb (in any of its common forms: "delete", "deletes",
// "deleted", "deleting", "deletion"), while no trusted content holds the
// value at all. Unlike Untrusted it gives short values a provenance too
// (the file id "13" of "delete the file 13"), since the verb beside it is
// what says the call was asked for. Verbs under three letters are ignored,
// and so are verbs past the first 16; a value repeated more than 256 times
// in untrusted content near where the verbs occur counts as instructed.
func (v *View) Instructed(value string, verbs []string) bool {
	want := valueWords(value)
	if len(want) == 0 {
		return false
	}
	vs := make([]string, 0, min(len(verbs), maxVerbs))
	for _, w := range verbs {
		w = strings.ToLower(w)
		if utf8.RuneCountInString(w) >= 3 && !slices.Contains(vs, w) && len(vs) < maxVerbs {
			vs = append(vs, w)
		}
	}
	if len(vs) == 0 {
		return false
	}
	joined := strings.Join(want, " ")
	// The filters of 4-byte windows rule most entries out before their
	// words are read: the normalised text holds whatever the words do.
	var vp *probes
	if norm := Normalize(joined); len(norm) >= MinLength {
		p := newProbes(norm)
		vp = &p
	}
	stems := make([]string, len(vs))
	sp := make([]*probes, len(vs))
	for i, w := range vs {
		stems[i] = strings.TrimSuffix(w, "e")
		if len(stems[i]) >= MinLength {
			p := newProbes(stems[i])
			sp[i] = &p
		}
	}
	found, budget := false, maxOccurrences
	for _, e := range v.st.entries {
		if vp != nil && !e.filter.mayHold(vp) {
			continue
		}
		if e.trusted {
			if hasWords(e.words, joined) {
				return false
			}
			continue
		}
		if !found && holdsAny(e, stems, sp) && instructedIn(e.words, joined, vs, &budget) {
			found = true
		}
	}
	return found
}

// WordSources returns the untrusted sources whose content holds a value
// too short for Sources ("13") as whole words, when no trusted content
// does; nil otherwise. A ticket then says where the short id of a call a
// result asked for came from.
func (v *View) WordSources(value string) []string {
	want := valueWords(value)
	if len(want) == 0 {
		return nil
	}
	joined := strings.Join(want, " ")
	var out []string
	for _, e := range v.st.entries {
		if !hasWords(e.words, joined) {
			continue
		}
		if e.trusted {
			return nil
		}
		if !slices.Contains(out, e.source) {
			out = append(out, e.source)
		}
	}
	return out
}

func holdsAny(e *entry, subs []string, ps []*probes) bool {
	for i, sub := range subs {
		if (ps[i] == nil || e.filter.mayHold(ps[i])) && strings.Contains(e.words, sub) {
			return true
		}
	}
	return false
}

// occurrences calls fn with the start of every occurrence of the words
// (tokens joined by a space) as whole tokens of the words form, until fn
// returns false.
func occurrences(words, joined string, fn func(int) bool) {
	for off := 0; off <= len(words)-len(joined); {
		i := strings.Index(words[off:], joined)
		if i < 0 {
			return
		}
		i += off
		end := i + len(joined)
		if (i == 0 || words[i-1] == ' ' || words[i-1] == '\n') && (end == len(words) || words[end] == ' ' || words[end] == '\n') {
			if !fn(i) {
				return
			}
		}
		off = i + 1
	}
}

// hasWords reports whether the words form holds the tokens in a row.
func hasWords(words, joined string) bool {
	found := false
	occurrences(words, joined, func(int) bool {
		found = true
		return false
	})
	return found
}

// instructedIn reports whether some occurrence of the value has one of the
// verbs within InstructionWindow tokens of it, in its sentence.
// budget counts down the occurrences a lookup may still check; when it
// runs out the value counts as instructed.
func instructedIn(words, joined string, verbs []string, budget *int) bool {
	found := false
	occurrences(words, joined, func(i int) bool {
		if *budget--; *budget < 0 {
			found = true
			return false
		}
		// Walk back and forth a window of tokens, stopping at the
		// sentence's ends.
		for j, n := i, 0; j > 0 && words[j-1] != '\n' && n < InstructionWindow; n++ {
			k := strings.LastIndexAny(words[:j-1], " \n") + 1
			if isVerb(words[k:j-1], verbs) {
				found = true
				return false
			}
			j = k
		}
		for j, n := i+len(joined), 0; j < len(words) && words[j] != '\n' && n < InstructionWindow; n++ {
			k := strings.IndexAny(words[j+1:], " \n")
			if k < 0 {
				k = len(words) - j - 1
			}
			if isVerb(words[j+1:j+1+k], verbs) {
				found = true
				return false
			}
			j += 1 + k
		}
		return true
	})
	return found
}

func isVerb(word string, verbs []string) bool {
	for _, v := range verbs {
		if verbForm(word, v) {
			return true
		}
	}
	return false
}

// verbForm reports whether a word is the verb in one of its common forms:
// the verb, +s/es, +d/ed, +ing, +ion/ation (a final e dropped): "reserve"
// is found in "reserved", "reserving" and "reservation"; "send" is not
// found in "sender".
func verbForm(word, verb string) bool {
	rest, ok := strings.CutPrefix(word, strings.TrimSuffix(verb, "e"))
	if !ok {
		return false
	}
	if strings.HasSuffix(verb, "e") {
		switch rest {
		case "e", "es", "ed", "ing", "ion", "ation":
			return true
		}
		return false
	}
	switch rest {
	case "", "s", "es", "ed", "ing", "ion", "ation":
		return true
	}
	return false
}

// NameWords splits a name into its lower-case words, at anything that is
// not a letter or digit and where a lower-case letter meets an upper-case
// one: "create_calendar_event", "createCalendarEvent" and
// "create-calendar-event" are all create, calendar, event.
func NameWords(name string) []string {
	var out []string
	var cur []rune
	prevLower := false
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	for _, r := range name {
		switch {
		case unicode.IsUpper(r):
			if prevLower {
				flush()
			}
			cur = append(cur, r)
			prevLower = false
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			cur = append(cur, r)
			prevLower = true
		default:
			flush()
			prevLower = false
		}
	}
	flush()
	return out
}
