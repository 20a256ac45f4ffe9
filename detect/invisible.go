package detect

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/agentgov/agentgov/action"
)

// invisibleClass is why a character is invisible, ordered by how much it
// suggests deliberate hiding.
type invisibleClass int

const (
	notInvisible invisibleClass = iota
	zeroWidth
	bidiControl
	variationSelector
	tagCharacter
)

var invisibleRules = [...]struct {
	rule     string
	severity action.Severity
	what     string
}{
	zeroWidth:         {"zero_width", action.SeverityMedium, "zero-width characters"},
	bidiControl:       {"bidi_control", action.SeverityHigh, "bidirectional control characters, which reorder how text is displayed"},
	variationSelector: {"variation_selectors", action.SeverityHigh, "variation selectors outside emoji, which can encode hidden bytes"},
	tagCharacter:      {"tag_characters", action.SeverityCritical, "Unicode tag characters, which can spell text no one sees"},
}

// mayHaveInvisible is the fast path: every character this file looks for is
// encoded in UTF-8 starting with one of these bytes.
func mayHaveInvisible(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0xE1, 0xE2, 0xEF, 0xF3:
			return true
		}
	}
	return false
}

func classify(r rune) invisibleClass {
	switch {
	case r >= 0xE0000 && r <= 0xE007F:
		return tagCharacter
	case r >= 0xE0100 && r <= 0xE01EF:
		return variationSelector
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return bidiControl
	case r == 0x200B, r == 0x200C, r == 0x200D, r >= 0x2060 && r <= 0x2064, r == 0xFEFF, r == 0x180E:
		return zeroWidth
	}
	return notInvisible
}

// invisible reports runs of invisible characters. It spares the legitimate
// uses: a byte-order mark at the very start, joiners inside emoji sequences
// and non-Latin scripts, tag characters in subdivision flag emoji, and
// directional embeddings in text that contains right-to-left script.
func invisible(text string) []Finding {
	if !mayHaveInvisible(text) {
		return nil
	}
	rtl := hasRTL(text)
	var out []Finding
	runStart, runEnd := -1, -1
	worst := notInvisible
	count := 0
	var hidden strings.Builder
	flush := func() {
		if runStart >= 0 {
			r := invisibleRules[worst]
			detail := fmt.Sprintf("%d invisible character(s): %s", count, r.what)
			if hidden.Len() > 0 {
				h := hidden.String()
				if len(h) > 80 {
					h = h[:80] + "..."
				}
				detail += fmt.Sprintf("; they spell %q", h)
			}
			out = append(out, Finding{Kind: KindInvisibleUnicode, Rule: r.rule, Severity: r.severity, Detail: detail, Start: runStart, End: runEnd})
		}
		runStart, runEnd, worst, count = -1, -1, notInvisible, 0
		hidden.Reset()
	}
	prev := rune(-1)
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		c := classify(r)
		if c != notInvisible && !legitimateInvisible(text, i, size, r, prev, rtl) {
			if runStart < 0 || runEnd != i {
				flush()
				runStart = i
			}
			runEnd = i + size
			count++
			worst = max(worst, c)
			if c == tagCharacter && r >= 0xE0020 && r <= 0xE007E {
				hidden.WriteByte(byte(r - 0xE0000))
			}
		}
		if c == notInvisible || c == tagCharacter {
			prev = r
		}
		i += size
	}
	flush()
	return out
}

func legitimateInvisible(text string, i, size int, r, prev rune, rtl bool) bool {
	switch {
	case r == 0xFEFF:
		return i == 0
	case r == 0x200C || r == 0x200D:
		// Joiners matter between emoji and in scripts such as Persian or
		// Devanagari; between ASCII letters they only hide things.
		next, _ := utf8.DecodeRuneInString(text[i+size:])
		return prev >= 0x80 && next >= 0x80 && classify(next) == notInvisible
	case r >= 0xE0000 && r <= 0xE007F:
		// Subdivision flags: U+1F3F4 followed by tag letters and U+E007F.
		return flagSequence(text, i)
	case r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069:
		// Overrides (LRO, RLO) reorder characters; embeddings and isolates
		// are normal in text that mixes directions.
		return rtl && r != 0x202D && r != 0x202E
	}
	return false
}

// flagSequence reports whether the tag character at i belongs to a
// well-formed subdivision flag (black flag, 2-6 tag letters or digits, cancel tag).
//
// Both walks stop after the longest flag's worth of tags, so that a long run
// of tag characters costs linear time, not quadratic.
func flagSequence(text string, i int) bool {
	// Walk back over tag characters to the black flag.
	j := i
	for steps := 0; ; steps++ {
		if j == 0 || steps > maxFlagTags {
			return false
		}
		r, size := utf8.DecodeLastRuneInString(text[:j])
		if r >= 0xE0000 && r <= 0xE007F {
			j -= size
			continue
		}
		if r != 0x1F3F4 {
			return false
		}
		break
	}
	n := 0
	for k := j; k < len(text) && n <= maxFlagTags; {
		r, size := utf8.DecodeRuneInString(text[k:])
		if r == 0xE007F {
			return n >= 2 && n <= 6
		}
		if !(r >= 0xE0030 && r <= 0xE0039 || r >= 0xE0061 && r <= 0xE007A) {
			return false
		}
		n++
		k += size
	}
	return false
}

// maxFlagTags is the most tag characters a subdivision flag holds: six
// letters or digits and the cancel tag.
const maxFlagTags = 7

func hasRTL(s string) bool {
	for _, r := range s {
		if r >= 0x0590 && r <= 0x08FF || r >= 0xFB1D && r <= 0xFDFF || r >= 0xFE70 && r <= 0xFEFE {
			return true
		}
	}
	return false
}
