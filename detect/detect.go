// Package detect finds things in text that an agent should not pass on or
// obey: secrets, personal data, prompt-injection phrasing, poisoned MCP tool
// metadata and look-alike tool names across servers.
//
// The detectors run on the hot path (every tool result, every model output, the
// policy engine's CEL functions), so each one is cheap on benign text: a fast
// substring or byte check decides whether any regular expression runs at all,
// every expression is compiled once at package initialisation, and Go's RE2
// engine bounds the work by the length of the input. They are tuned for
// precision: a finding should be worth a human's attention.
//
// All functions are safe for concurrent use and never modify their input.
package detect

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/agentgov/agentgov/action"
)

// Kind is the family of a finding. Policies match on it.
type Kind string

const (
	KindSecret           Kind = "secret"
	KindPII              Kind = "pii"
	KindInjection        Kind = "injection"
	KindPoisoning        Kind = "poisoning"
	KindShadowing        Kind = "shadowing"
	KindInvisibleUnicode Kind = "invisible_unicode"
	// KindCommand marks shell payloads (download-and-execute, reverse
	// shells) found in text an agent reads.
	KindCommand Kind = "command"
)

// Finding is one thing a detector found. Detail is meant for people and logs:
// it says what was found and where, never the secret itself, so a finding can
// be stored in the audit log as it is.
type Finding struct {
	Kind     Kind
	Rule     string          // e.g. "aws_access_key", "credit_card", "ignore_instructions"
	Severity action.Severity // how much attention the finding deserves
	Detail   string          // human-readable, never contains the secret itself
	// Start and End are byte offsets into the scanned text (End exclusive);
	// both are 0 when the finding has no position (shadowing, or a finding in
	// a tool's name or input schema rather than its description).
	Start, End int
}

// Positional reports whether f points at a span of the scanned text.
func (f Finding) Positional() bool { return f.End > f.Start }

// KindUnscanned marks the part of a text beyond ScanLimit, which the
// detectors did not read.
const KindUnscanned Kind = "unscanned"

// ScanLimit is how many bytes of one text the detectors read. Their work
// grows with the length of what they read, and a text dense in trigger
// words costs them far more per byte than ordinary prose, so one request
// must not be able to buy unbounded work. What lies beyond the limit is not
// read, and the detectors say so with one finding over it (kind and rule
// "unscanned", severity medium): Redact then hides it, and a policy's
// has_secret, has_pii or has_injection treats it as suspect. What was not
// read is not vouched for.
const ScanLimit = 1 << 20

// scanLimited splits text at ScanLimit: the part the detectors read, and
// the finding that stands for the rest (nil when there is no rest). The cut
// falls between words where it can, so that no credential is read in part.
func scanLimited(text string) (string, *Finding) {
	if len(text) <= ScanLimit {
		return text, nil
	}
	cut := ScanLimit
	if i := strings.LastIndexAny(text[cut-4096:cut], " \t\r\n"); i >= 0 {
		cut = cut - 4096 + i + 1
	}
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut], &Finding{
		Kind: KindUnscanned, Rule: "unscanned", Severity: action.SeverityMedium,
		Detail: fmt.Sprintf("%d bytes beyond the detectors' scan limit of %d bytes were not examined", len(text)-cut, ScanLimit),
		Start:  cut, End: len(text),
	}
}

// limited runs detector over the part of text within ScanLimit and adds the
// finding for the rest.
func limited(text string, detector func(string) []Finding) []Finding {
	head, rest := scanLimited(text)
	out := detector(head)
	if rest != nil {
		out = append(out, *rest)
	}
	return out
}

// All runs Secrets, PII and Injection over text and returns their findings
// sorted by Start. It is what a post_tool_call or output check usually wants.
func All(text string) []Finding {
	return limited(text, func(head string) []Finding {
		var out []Finding
		out = append(out, secrets(head)...)
		out = append(out, pii(head)...)
		out = append(out, injection(head)...)
		sortFindings(out)
		return out
	})
}

// Redact replaces the span of each positional finding with
// "[REDACTED:<rule>]". Overlapping spans are merged and labelled with the rule
// of the earliest (then longest) finding among them. Findings without a
// position, or whose span does not lie within text, are ignored: redaction is
// given findings from elsewhere and must never panic on them.
func Redact(text string, findings []Finding) string {
	spans := make([]Finding, 0, len(findings))
	for _, f := range findings {
		if f.Start >= 0 && f.End > f.Start && f.End <= len(text) {
			spans = append(spans, f)
		}
	}
	if len(spans) == 0 {
		return text
	}
	slices.SortFunc(spans, func(a, b Finding) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmp.Compare(b.End, a.End)
	})
	var b strings.Builder
	b.Grow(len(text))
	pos := 0
	for i := 0; i < len(spans); {
		start, end, rule := spans[i].Start, spans[i].End, spans[i].Rule
		j := i + 1
		for j < len(spans) && spans[j].Start < end {
			end = max(end, spans[j].End)
			j++
		}
		b.WriteString(text[pos:start])
		b.WriteString("[REDACTED:")
		b.WriteString(rule)
		b.WriteString("]")
		pos = end
		i = j
	}
	b.WriteString(text[pos:])
	return b.String()
}

// sortFindings orders findings by position, then by rule, so that output is
// deterministic whatever order the detectors ran in.
func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		if c := cmp.Compare(a.End, b.End); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return cmp.Compare(a.Rule, b.Rule)
	})
}

// dropOverlapped removes each finding for which weaker is true when it
// overlaps a finding for which weaker is false. Detectors use it so that one
// token is reported once, by its most precise rule. It sorts the strong
// findings once and sweeps them, so a text full of findings costs
// n log n, not n².
func dropOverlapped(fs []Finding, weaker func(f Finding) bool) []Finding {
	if len(fs) < 2 {
		return fs
	}
	var strong []span
	for _, f := range fs {
		if !weaker(f) {
			strong = append(strong, span{f.Start, f.End})
		}
	}
	if len(strong) == 0 || len(strong) == len(fs) {
		return fs
	}
	// Merged, the strong spans are disjoint and sorted, so one binary search
	// finds the only span a weak finding can overlap first.
	slices.SortFunc(strong, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	merged := strong[:1]
	for _, s := range strong[1:] {
		last := &merged[len(merged)-1]
		if s.start < last.end {
			last.end = max(last.end, s.end)
		} else {
			merged = append(merged, s)
		}
	}
	out := fs[:0:0]
	for _, f := range fs {
		if weaker(f) {
			// The first merged span ending after f starts is the only
			// candidate: the ones before it end before f starts.
			i, _ := slices.BinarySearchFunc(merged, f.Start, func(s span, start int) int {
				if s.end <= start {
					return -1
				}
				return 1
			})
			if i < len(merged) && merged[i].start < f.End && f.Start < merged[i].end {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// lowerASCII folds A-Z to a-z and leaves every other byte alone, so byte
// offsets found in the result are valid in s. strings.ToLower would not
// guarantee that: some non-ASCII letters change length when lowered.
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// containsAny reports whether s contains one of the substrings.
func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
