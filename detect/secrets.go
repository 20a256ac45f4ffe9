package detect

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"math"
	"regexp"
	"strings"

	"github.com/agentgov/agentgov/action"
)

// secretRule is one kind of credential. Most credentials carry a fixed,
// case-sensitive prefix; the regexp runs only when one of them is present.
type secretRule struct {
	rule     string
	severity action.Severity
	detail   string
	prefixes []string
	re       *regexp.Regexp
	// secret is the submatch holding the credential itself (0 for the whole
	// match); minEntropy, when set, rejects placeholders such as "xxxx".
	secret     int
	minEntropy float64
	// before and reach are how far ahead of and past a prefix the match
	// may run (defaults 96 and 320).
	before, reach int
	// spanSecret reports only the secret submatch, leaving the name it is
	// assigned to readable after redaction.
	spanSecret bool
	// valid, when set, has the last word on a match (loc as from
	// FindAllStringSubmatchIndex) and may widen or narrow the span or change
	// the severity (an empty severity keeps the rule's).
	valid func(text string, loc []int) (start, end int, sev action.Severity, ok bool)
}

var secretRules = []secretRule{
	{
		rule: "private_key", severity: action.SeverityCritical,
		detail:   "PEM private key block",
		prefixes: []string{"PRIVATE KEY"},
		re:       regexp.MustCompile(`-----BEGIN [A-Z0-9 ]{0,20}PRIVATE KEY(?: BLOCK)?-----`),
		valid:    privateKeySpan,
	},
	{
		rule: "aws_access_key", severity: action.SeverityCritical,
		detail:   "AWS access key ID",
		prefixes: []string{"AKIA", "ASIA", "ABIA", "ACCA", "A3T"},
		re:       regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b`),
	},
	{
		rule: "aws_secret_key", severity: action.SeverityCritical,
		detail:   "AWS secret access key assignment",
		prefixes: []string{"ecret", "ECRET"},
		re:       regexp.MustCompile(`(?i)\baws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`),
		secret:   1, minEntropy: 3.5, spanSecret: true,
	},
	{
		rule: "github_token", severity: action.SeverityCritical,
		detail:     "GitHub token",
		prefixes:   []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
		re:         regexp.MustCompile(`\b(?:gh[pousr]_([A-Za-z0-9]{36})|github_pat_([A-Za-z0-9_]{70,255}))\b`),
		minEntropy: 3.5,
	},
	{
		rule: "gitlab_token", severity: action.SeverityCritical,
		detail:   "GitLab personal access token",
		prefixes: []string{"glpat-"},
		re:       regexp.MustCompile(`\bglpat-([A-Za-z0-9_-]{20,})`),
		secret:   1, minEntropy: 3.3,
	},
	{
		rule: "slack_token", severity: action.SeverityHigh,
		detail:   "Slack token",
		prefixes: []string{"xox", "xapp-"},
		re:       regexp.MustCompile(`\b(?:xox[abposre]-[0-9]{6,}-[0-9A-Za-z-]{8,}|xapp-[0-9]-[A-Z0-9]{6,}-[0-9]{6,}-[A-Za-z0-9]{16,})`),
	},
	{
		rule: "slack_webhook", severity: action.SeverityHigh,
		detail:   "Slack incoming webhook URL",
		prefixes: []string{"hooks.slack.com/"},
		re:       regexp.MustCompile(`https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}`),
	},
	{
		rule: "stripe_key", severity: action.SeverityCritical,
		detail:   "Stripe secret or restricted key",
		prefixes: []string{"k_live_", "k_test_"},
		re:       regexp.MustCompile(`\b[rs]k_(live|test)_([0-9A-Za-z]{20,247})\b`),
		secret:   2, minEntropy: 3.3,
		valid: func(text string, loc []int) (int, int, action.Severity, bool) {
			if text[loc[2]:loc[3]] == "test" {
				return loc[0], loc[1], action.SeverityMedium, true
			}
			return loc[0], loc[1], action.SeverityCritical, true
		},
	},
	{
		rule: "google_api_key", severity: action.SeverityHigh,
		detail:   "Google API key",
		prefixes: []string{"AIza"},
		re:       regexp.MustCompile(`\bAIza([0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)`),
		secret:   1, minEntropy: 3.3,
		valid: trimTrailing,
	},
	{
		rule: "anthropic_key", severity: action.SeverityCritical,
		detail:   "Anthropic API key",
		prefixes: []string{"sk-ant-"},
		re:       regexp.MustCompile(`\bsk-ant-(?:api|admin|oat|ort)[0-9]{2}-([A-Za-z0-9_-]{32,})`),
		secret:   1, minEntropy: 3.5,
	},
	{
		rule: "openai_key", severity: action.SeverityCritical,
		detail:     "OpenAI API key",
		prefixes:   []string{"sk-"},
		re:         regexp.MustCompile(`\bsk-(?:(?:proj|svcacct|admin)-([A-Za-z0-9_-]{40,})|([A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})|([A-Za-z0-9]{48}))(?:[^A-Za-z0-9_-]|$)`),
		minEntropy: 3.5,
		valid:      trimTrailing,
	},
	{
		rule: "huggingface_token", severity: action.SeverityHigh,
		detail:   "Hugging Face access token",
		prefixes: []string{"hf_"},
		re:       regexp.MustCompile(`\bhf_([A-Za-z]{34})\b`),
		secret:   1, minEntropy: 3.5,
	},
	{
		rule: "npm_token", severity: action.SeverityHigh,
		detail:   "npm access token",
		prefixes: []string{"npm_"},
		re:       regexp.MustCompile(`\bnpm_([A-Za-z0-9]{36})\b`),
		secret:   1, minEntropy: 3.5,
	},
	{
		rule: "jwt", severity: action.SeverityHigh,
		detail:   "JSON Web Token",
		prefixes: []string{"eyJ"},
		re:       regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`),
		reach:    16 << 10,
		valid:    validJWT,
	},
	{
		rule: "url_credentials", severity: action.SeverityHigh,
		detail:   "password embedded in a URL",
		prefixes: []string{"@"},
		before:   232,
		re:       regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/?#@'"<>]{1,64}:([^\s/?#@'"<>]{3,128})@[A-Za-z0-9.-]+`),
		secret:   1,
		valid: func(text string, loc []int) (int, int, action.Severity, bool) {
			if placeholderValue(text[loc[2]:loc[3]]) {
				return 0, 0, "", false
			}
			return loc[2], loc[3], action.SeverityHigh, true
		},
	},
}

// genericSecret catches "password = ..." style assignments. It is the least
// specific rule, so it only reports values that look random (entropy, mixed
// character classes) and are not placeholders or references to code.
var genericSecret = regexp.MustCompile(`(?i)\b(?:[a-z0-9]+[_-]){0,3}(password|passwd|pwd|passphrase|secret|secret[_-]?key|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|private[_-]?key|credentials?)["']?\s*(?::=|=>|[:=])\s*["'\x60]?([^\s"'\x60,;<>)\]}]{8,200})`)

var genericAnchors = []string{"pass", "pwd", "secret", "key", "token", "credential"}

// codeReference matches values that name a variable rather than hold a
// secret: os.environ.X, config.password, settings.SECRET_KEY.
var codeReference = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])+$`)

// Secrets finds credentials: private keys, cloud and SaaS API keys and tokens,
// JWTs, passwords in URLs and high-entropy values assigned to secret-sounding
// names. Detail names the kind of credential and never repeats it. Text
// beyond ScanLimit is not read (see ScanLimit).
func Secrets(text string) []Finding { return limited(text, secrets) }

// minSecretLen is the length of the shortest text any rule below can match
// ("pwd=" and eight characters; "s://u:pwd@h" and one more), so shorter
// texts (argument keys, tool names) are not scanned at all.
const minSecretLen = 12

func secrets(text string) []Finding {
	if len(text) < minSecretLen {
		return nil
	}
	var out []Finding
	for i := range secretRules {
		r := &secretRules[i]
		if !containsAny(text, r.prefixes) {
			continue
		}
		reach := r.reach
		if reach == 0 {
			reach = 320
		}
		for _, loc := range findInWindows(r.re, text, anchorWindows(text, r.prefixes, cmp.Or(r.before, 96), reach, false)) {
			start, end, sev := loc[0], loc[1], r.severity
			if r.spanSecret {
				start, end = secretPart(loc, r.secret)
			}
			if r.minEntropy > 0 {
				s, e := secretPart(loc, r.secret)
				if s < 0 || entropy(text[s:e]) < r.minEntropy {
					continue
				}
			}
			if r.valid != nil {
				s, e, v, ok := r.valid(text, loc)
				if !ok {
					continue
				}
				start, end = s, e
				if v != "" {
					sev = v
				}
			}
			out = append(out, Finding{Kind: KindSecret, Rule: r.rule, Severity: sev, Detail: r.detail, Start: start, End: end})
		}
	}
	out = append(out, genericSecrets(text)...)
	out = dropOverlapped(out, func(f Finding) bool { return f.Rule == "generic_secret" })
	sortFindings(out)
	return out
}

func genericSecrets(text string) []Finding {
	ws := anchorWindows(lowerASCII(text), genericAnchors, 96, 260, false)
	if len(ws) == 0 {
		return nil
	}
	var out []Finding
	for _, loc := range findInWindows(genericSecret, text, ws) {
		v := text[loc[4]:loc[5]]
		if !randomLooking(v) {
			continue
		}
		name := strings.ToLower(text[loc[2]:loc[3]])
		out = append(out, Finding{
			Kind: KindSecret, Rule: "generic_secret", Severity: action.SeverityHigh,
			Detail: "high-entropy value assigned to " + name,
			Start:  loc[4], End: loc[5],
		})
	}
	return out
}

// randomLooking reports whether an assigned value looks like a real secret
// rather than prose, a placeholder or a reference to another variable.
func randomLooking(v string) bool {
	if placeholderValue(v) || codeReference.MatchString(v) {
		return false
	}
	if strings.ContainsAny(v[:1], "$%{[(*#&") || strings.Contains(v, "(") || strings.HasSuffix(v, ":") {
		return false
	}
	var lower, upper, digit, other bool
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case isDigit(c):
			digit = true
		default:
			other = true
		}
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			classes++
		}
	}
	if classes < 2 || !digit && !other {
		return false // a word or a CamelCase name, not a secret
	}
	return entropy(v) >= 3.0
}

var placeholderWords = []string{
	"xxxx", "****", "....", "•••", "changeme", "change_me", "change-me", "your_", "your-", "yourpass",
	"<", "${", "{{", "placeholder", "redacted", "dummy", "example.com", "password", "passwd", "secret123",
}

// placeholderValue reports values that only stand in for a secret.
func placeholderValue(v string) bool {
	l := strings.ToLower(v)
	if l == "pass" || l == "pwd" || l == "user" || l == "token" || l == "null" || l == "none" || l == "true" || l == "false" {
		return true
	}
	for _, w := range placeholderWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	same := true
	for i := 1; i < len(v); i++ {
		if v[i] != v[0] {
			same = false
			break
		}
	}
	return same
}

// secretPart returns the span of the submatch holding the credential: group
// when it is set, else the first group that matched, else the whole match.
func secretPart(loc []int, group int) (int, int) {
	if group > 0 {
		return loc[2*group], loc[2*group+1]
	}
	for g := 1; 2*g+1 < len(loc); g++ {
		if loc[2*g] >= 0 {
			return loc[2*g], loc[2*g+1]
		}
	}
	return loc[0], loc[1]
}

// trimTrailing drops the delimiter byte that a rule matches after the token
// (RE2 has no lookahead), so the span covers only the credential.
func trimTrailing(text string, loc []int) (int, int, action.Severity, bool) {
	end := loc[1]
	if c := text[end-1]; !isAlnum(c) && c != '_' && c != '-' {
		end--
	}
	return loc[0], end, "", true
}

// privateKeySpan extends a PEM header over its body to the END line, or over
// the base64 that follows when the block is truncated. A header with hardly
// any body (documentation quoting the format) is reported as high, not
// critical.
func privateKeySpan(text string, loc []int) (int, int, action.Severity, bool) {
	end := loc[1]
	rest := text[end:]
	if len(rest) > 16<<10 {
		rest = rest[:16<<10]
	}
	if i := strings.Index(rest, "-----END "); i >= 0 {
		if j := strings.Index(rest[i+9:], "-----"); j >= 0 && strings.Contains(rest[i:i+9+j], "PRIVATE KEY") {
			return loc[0], end + i + 9 + j + 5, action.SeverityCritical, true
		}
	}
	body := 0
	k := 0
	for k < len(rest) {
		c := rest[k]
		if isAlnum(c) || c == '+' || c == '/' || c == '=' {
			body++
		} else if c != ' ' && c != '\n' && c != '\r' && c != '\t' && c != '\\' {
			break
		}
		k++
	}
	for k > 0 && strings.ContainsRune(" \n\r\t\\", rune(rest[k-1])) {
		k--
	}
	sev := action.SeverityCritical
	if body < 32 {
		sev = action.SeverityHigh
	}
	return loc[0], end + k, sev, true
}

// validJWT keeps only tokens whose header and payload decode to JSON objects
// and whose header names an algorithm or a type.
func validJWT(text string, loc []int) (int, int, action.Severity, bool) {
	tok := text[loc[0]:loc[1]]
	parts := strings.SplitN(tok, ".", 3)
	if len(parts) != 3 {
		return 0, 0, "", false
	}
	var header map[string]any
	if !decodeSegment(parts[0], &header) {
		return 0, 0, "", false
	}
	if _, ok := header["alg"]; !ok {
		if _, ok := header["typ"]; !ok {
			return 0, 0, "", false
		}
	}
	var payload map[string]any
	if !decodeSegment(parts[1], &payload) {
		return 0, 0, "", false
	}
	return loc[0], loc[1], action.SeverityHigh, true
}

func decodeSegment(seg string, v any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

// entropy is the Shannon entropy of s in bits per byte. Random base62 tokens
// score above 5; English words and repeated placeholders score far lower.
func entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
