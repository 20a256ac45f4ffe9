package detect

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
)

// Regular expressions over a whole 4 KiB text are slow in Go once the
// program is large: the engine falls back to simulating the automaton byte by
// byte. The detectors therefore run each expression only over small windows
// of the text around the places where a match could start: an anchor word, an
// '@', a run of digits. Benign text has few such places, so most of it is
// never seen by a regexp, and small windows let the engine use its faster
// backtracking matcher.

// span is a half-open byte range of the scanned text.
type span struct{ start, end int }

// anchorWindows returns the merged ranges reaching before bytes ahead of and
// after bytes past every occurrence of an anchor. Each range is widened to
// whole words (and whole UTF-8 sequences) so that \b and character classes
// see the same neighbours as in the full text.
//
// With wordStart, an anchor that begins with a letter or digit only counts at
// the start of a word, so "ai" does not fire inside "maintain".
func anchorWindows(s string, anchors []string, before, after int, wordStart bool) []span {
	var ws []span
	for _, a := range anchors {
		check := wordStart && isAlnum(a[0])
		for from := 0; from < len(s); {
			i := strings.Index(s[from:], a)
			if i < 0 {
				break
			}
			p := from + i
			from = p + 1
			if check && p > 0 && wordByte(s[p-1]) {
				continue
			}
			ws = append(ws, span{max(0, p-before), min(len(s), p+len(a)+after)})
		}
	}
	return mergeWindows(s, ws)
}

// digitWindows returns ranges around runs of text that contain at least
// minDigits digits written with the separators numbers use.
func digitWindows(s string, minDigits, pad int) []span {
	var ws []span
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j, n := i, 0
		for j < len(s) && (isDigit(s[j]) || strings.IndexByte(" -.()/", s[j]) >= 0) {
			if isDigit(s[j]) {
				n++
			}
			j++
		}
		if n >= minDigits {
			ws = append(ws, span{max(0, i-pad), min(len(s), j+pad)})
		}
		i = j
	}
	return mergeWindows(s, ws)
}

func mergeWindows(s string, ws []span) []span {
	if len(ws) == 0 {
		return nil
	}
	// Anchors are found one after another, each anchor's windows in order:
	// sort by start first (a real sort: interleaved anchors are the common
	// case in a text made of trigger words).
	slices.SortFunc(ws, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	out := ws[:1]
	for _, w := range ws[1:] {
		last := &out[len(out)-1]
		if w.start <= last.end {
			last.end = max(last.end, w.end)
		} else {
			out = append(out, w)
		}
	}
	for i := range out {
		w := &out[i]
		for k := 0; w.start > 0 && k < 64 && wordByte(s[w.start-1]); k++ {
			w.start--
		}
		for k := 0; w.end < len(s) && k < 64 && wordByte(s[w.end]); k++ {
			w.end++
		}
	}
	// Widening may have made neighbours touch.
	merged := out[:1]
	for _, w := range out[1:] {
		last := &merged[len(merged)-1]
		if w.start <= last.end {
			last.end = max(last.end, w.end)
		} else {
			merged = append(merged, w)
		}
	}
	return merged
}

func wordByte(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }

// findInWindows is FindAllStringSubmatchIndex over each window, with the
// indices translated back to positions in s.
func findInWindows(re *regexp.Regexp, s string, ws []span) [][]int {
	var out [][]int
	for _, w := range ws {
		for _, loc := range re.FindAllStringSubmatchIndex(s[w.start:w.end], -1) {
			for k := range loc {
				if loc[k] >= 0 {
					loc[k] += w.start
				}
			}
			out = append(out, loc)
		}
	}
	return out
}

// wordIndex finds anchors in lowered text without scanning the text once
// per anchor: word starts are bucketed by their first two bytes (a counting
// sort into one array), so looking up an anchor that starts a word costs only
// the words sharing its first two characters. Anchors that start with
// punctuation (".ssh", "<", "[") are searched for directly.
type wordIndex struct {
	s      string
	built  bool
	starts []int32            // word-start positions grouped by bucket
	offset [buckets + 1]int32 // bucket b is starts[offset[b]:offset[b+1]]
}

// buckets: 36 first characters (a-z, 0-9) times 37 second characters (the
// same, or anything else).
const buckets = 36 * 37

func newWordIndex(lower string) *wordIndex { return &wordIndex{s: lower} }

func alnumIndex(c byte) int {
	switch {
	case c >= 'a' && c <= 'z':
		return int(c - 'a')
	case c >= '0' && c <= '9':
		return 26 + int(c-'0')
	}
	return -1
}

// bucket of the word starting at p; -1 when s[p] is not a lowercase letter
// or digit.
func bucket(s string, p int) int {
	first := alnumIndex(s[p])
	if first < 0 {
		return -1
	}
	second := 36
	if p+1 < len(s) {
		if i := alnumIndex(s[p+1]); i >= 0 {
			second = i
		}
	}
	return first*37 + second
}

func (x *wordIndex) isStart(p int) bool { return p == 0 || !wordByte(x.s[p-1]) }

func (x *wordIndex) build() {
	x.built = true
	var count [buckets]int32
	n := 0
	for p := 0; p < len(x.s); p++ {
		if x.isStart(p) {
			if b := bucket(x.s, p); b >= 0 {
				count[b]++
				n++
			}
		}
	}
	for b := range buckets {
		x.offset[b+1] = x.offset[b] + count[b]
	}
	x.starts = make([]int32, n)
	next := x.offset
	for p := 0; p < len(x.s); p++ {
		if x.isStart(p) {
			if b := bucket(x.s, p); b >= 0 {
				x.starts[next[b]] = int32(p)
				next[b]++
			}
		}
	}
}

// windows is anchorWindows with word-start anchors looked up in the index.
func (x *wordIndex) windows(anchors []string, before, after int) []span {
	var ws []span
	add := func(p, n int) {
		ws = append(ws, span{max(0, p-before), min(len(x.s), p+n+after)})
	}
	for _, a := range anchors {
		b := bucket(a, 0)
		if b < 0 {
			for from := 0; from < len(x.s); {
				i := strings.Index(x.s[from:], a)
				if i < 0 {
					break
				}
				add(from+i, len(a))
				from += i + 1
			}
			continue
		}
		if !x.built {
			x.build()
		}
		for _, p := range x.starts[x.offset[b]:x.offset[b+1]] {
			if strings.HasPrefix(x.s[p:], a) {
				add(int(p), len(a))
			}
		}
	}
	return mergeWindows(x.s, ws)
}
