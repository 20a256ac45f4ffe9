package detect

import (
	"regexp"
	"strings"

	"github.com/agentgov/agentgov/action"
)

var (
	cardCandidate = regexp.MustCompile(`\b(?:[0-9][ -]?){12,18}[0-9]\b`)
	ssnDashed     = regexp.MustCompile(`\b([0-9]{3})-([0-9]{2})-([0-9]{4})\b`)
	ssnLabelled   = regexp.MustCompile(`(?i)\b(?:ssn|social security(?: number| no\.?| #)?)\s*(?:#|:|is|=)?\s*([0-9]{3} ?[0-9]{2} ?[0-9]{4})\b`)
	emailRE       = regexp.MustCompile(`[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.([A-Za-z]{2,24})\b`)
	phoneIntl     = regexp.MustCompile(`\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}`)
	phoneNANP     = regexp.MustCompile(`(?:\(([2-9][0-9]{2})\) ?|\b([2-9][0-9]{2})[-.])([2-9][0-9]{2})[-.]([0-9]{4})\b`)
	ibanCandidate = regexp.MustCompile(`\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,8}(?: ?[A-Z0-9]{1,3})?\b`)
)

// PII finds personal data: payment card numbers that pass the Luhn check and
// carry a known issuer prefix, US social security numbers outside the ranges
// never issued, e-mail addresses, phone numbers written in an unambiguous
// format and IBANs that pass the mod-97 check. Each rule prefers missing an
// odd format to flagging order numbers, dates or version strings. Text
// beyond ScanLimit is not read (see ScanLimit).
func PII(text string) []Finding { return limited(text, pii) }

// minPIILen is the length of the shortest e-mail address ("a@b.co"); every
// other rule needs more.
const minPIILen = 6

func pii(text string) []Finding {
	if len(text) < minPIILen {
		return nil
	}
	var out []Finding
	digits := countDigits(text)
	if digits >= 13 {
		out = append(out, cards(text)...)
	}
	if digits >= 9 {
		out = append(out, ssns(text)...)
	}
	if strings.IndexByte(text, '@') >= 0 {
		out = append(out, emails(text)...)
	}
	if digits >= 10 {
		out = append(out, phones(text)...)
	}
	if digits >= 2 {
		out = append(out, ibans(text)...)
	}
	// A phone-shaped run inside a card number or an IBAN is not a phone.
	out = dropOverlapped(out, func(f Finding) bool { return f.Rule == "phone" })
	sortFindings(out)
	return out
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

func cards(text string) []Finding {
	var out []Finding
	for _, loc := range findInWindows(cardCandidate, text, digitWindows(text, 13, 4)) {
		s, e := loc[0], loc[1]
		if s > 0 && (text[s-1] == '-' || text[s-1] == '.' || text[s-1] == '+') ||
			e < len(text)-1 && (text[e] == '.' || text[e] == '-') && isDigit(text[e+1]) {
			continue // part of a longer dotted or dashed number
		}
		raw := text[s:e]
		num, ok := cardDigits(raw)
		if !ok || !cardIssuer(num) || !luhn(num) || repetitive(num) {
			continue
		}
		out = append(out, Finding{
			Kind: KindPII, Rule: "credit_card", Severity: action.SeverityHigh,
			Detail: "payment card number (" + cardBrand(num) + ", passes Luhn check)",
			Start:  s, End: e,
		})
	}
	return out
}

// cardDigits strips separators and checks that they group the number the way
// cards are printed: 4-4-4-4(-3), 4-6-5 or 4-6-4, all with one separator.
func cardDigits(raw string) (string, bool) {
	var sep byte
	var groups []int
	n := 0
	digits := make([]byte, 0, 19)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if isDigit(c) {
			digits = append(digits, c)
			n++
			continue
		}
		if sep == 0 {
			sep = c
		} else if c != sep {
			return "", false
		}
		groups = append(groups, n)
		n = 0
	}
	groups = append(groups, n)
	if len(digits) < 13 || len(digits) > 19 {
		return "", false
	}
	if len(groups) > 1 && !cardGrouping(groups) {
		return "", false
	}
	return string(digits), true
}

func cardGrouping(g []int) bool {
	if len(g) == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4) {
		return true
	}
	for i, n := range g {
		if i < len(g)-1 && n != 4 || i == len(g)-1 && (n < 1 || n > 4) {
			return false
		}
	}
	return len(g) >= 4
}

// cardIssuer reports whether the number starts with a prefix some card
// network issues; most random digit runs do not.
func cardIssuer(n string) bool { return cardBrand(n) != "" }

func cardBrand(n string) string {
	p2 := atoi(n[:2])
	p3 := atoi(n[:3])
	p4 := atoi(n[:4])
	switch {
	case n[0] == '4':
		return "Visa"
	case p2 >= 51 && p2 <= 55 || p4 >= 2221 && p4 <= 2720:
		return "Mastercard"
	case p2 == 34 || p2 == 37:
		return "American Express"
	case p4 == 6011 || p2 == 65 || p3 >= 644 && p3 <= 649:
		return "Discover"
	case p4 >= 3528 && p4 <= 3589:
		return "JCB"
	case p3 >= 300 && p3 <= 305 || p2 == 36 || p2 == 38 || p2 == 39:
		return "Diners Club"
	case p2 == 62:
		return "UnionPay"
	case p2 == 50 || p2 >= 56 && p2 <= 69:
		return "Maestro"
	}
	return ""
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func luhn(n string) bool {
	sum := 0
	double := false
	for i := len(n) - 1; i >= 0; i-- {
		d := int(n[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// repetitive rejects numbers made of one repeated digit or a short repeated
// pattern, which pass Luhn by accident and are placeholders.
func repetitive(n string) bool {
	for period := 1; period <= 4; period++ {
		same := true
		for i := period; i < len(n); i++ {
			if n[i] != n[i-period] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func ssns(text string) []Finding {
	var out []Finding
	for _, loc := range findInWindows(ssnDashed, text, digitWindows(text, 9, 4)) {
		s, e := loc[0], loc[1]
		if s > 0 && (text[s-1] == '-' || text[s-1] == '.' || text[s-1] == '/') ||
			e < len(text) && (text[e] == '-' || text[e] == '/' || text[e] == '.' && e+1 < len(text) && isDigit(text[e+1])) {
			continue
		}
		if validSSN(text[loc[2]:loc[3]], text[loc[4]:loc[5]], text[loc[6]:loc[7]]) {
			out = append(out, ssnFinding(s, e))
		}
	}
	if ws := anchorWindows(lowerASCII(text), []string{"ssn", "social security"}, 8, 64, true); len(ws) > 0 {
		for _, loc := range findInWindows(ssnLabelled, text, ws) {
			d := strings.ReplaceAll(text[loc[2]:loc[3]], " ", "")
			if validSSN(d[:3], d[3:5], d[5:]) {
				out = append(out, ssnFinding(loc[2], loc[3]))
			}
		}
	}
	return dedupe(out)
}

func ssnFinding(s, e int) Finding {
	return Finding{Kind: KindPII, Rule: "us_ssn", Severity: action.SeverityHigh, Detail: "US social security number", Start: s, End: e}
}

// validSSN excludes what the SSA never issues: area 000, 666 and 900-999,
// group 00, serial 0000, and the numbers known from advertising and examples.
func validSSN(area, group, serial string) bool {
	a := atoi(area)
	if a == 0 || a == 666 || a >= 900 || group == "00" || serial == "0000" {
		return false
	}
	switch area + group + serial {
	case "078051120", "219099999", "123456789":
		return false
	}
	return true
}

var notTLD = map[string]bool{
	"png": true, "jpg": true, "jpeg": true, "gif": true, "svg": true, "webp": true, "ico": true,
	"js": true, "mjs": true, "ts": true, "css": true, "map": true, "json": true, "txt": true,
	"md": true, "html": true, "py": true, "go": true, "rb": true, "java": true, "lock": true,
}

func emails(text string) []Finding {
	var out []Finding
	for _, loc := range findInWindows(emailRE, text, anchorWindows(text, []string{"@"}, 64, 256, false)) {
		s, e := loc[0], loc[1]
		if s > 0 && strings.IndexByte(":/\\=", text[s-1]) >= 0 {
			continue // user:password@host or a path, not an address
		}
		local := text[s : strings.IndexByte(text[s:e], '@')+s]
		if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
			continue
		}
		if notTLD[strings.ToLower(text[loc[2]:loc[3]])] {
			continue // image@2x.png, module@1.2.3.js
		}
		out = append(out, Finding{Kind: KindPII, Rule: "email", Severity: action.SeverityLow, Detail: "e-mail address", Start: s, End: e})
	}
	return out
}

func phones(text string) []Finding {
	var out []Finding
	ws := digitWindows(text, 8, 4)
	for _, loc := range findInWindows(phoneIntl, text, ws) {
		s, e := loc[0], loc[1]
		for e > s && !isDigit(text[e-1]) {
			e-- // a trailing "(" or separator is not part of the number
		}
		if s > 0 && isAlnum(text[s-1]) || e < len(text) && isAlnum(text[e]) {
			continue
		}
		if n := countDigits(text[s:e]); n < 8 || n > 15 || strings.Count(text[s:e], "(") != strings.Count(text[s:e], ")") {
			continue
		}
		out = append(out, phoneFinding(s, e))
	}
	for _, loc := range findInWindows(phoneNANP, text, ws) {
		s, e := loc[0], loc[1]
		if s > 0 && (isDigit(text[s-1]) || text[s-1] == '-' || text[s-1] == '.' || text[s-1] == '+') ||
			e < len(text)-1 && (text[e] == '-' || text[e] == '.') && isDigit(text[e+1]) {
			continue
		}
		if loc[4] >= 0 && e-s == 12 && text[s+3] != text[s+7] {
			continue // mixed separators: 415-555.0132 is more likely not a phone
		}
		out = append(out, phoneFinding(s, e))
	}
	return dedupe(out)
}

func phoneFinding(s, e int) Finding {
	return Finding{Kind: KindPII, Rule: "phone", Severity: action.SeverityLow, Detail: "phone number", Start: s, End: e}
}

// ibanWindows returns ranges starting where two capital letters of a known
// country are followed by two digits, the shape every IBAN starts with.
func ibanWindows(s string) []span {
	var ws []span
	for i := 0; i+3 < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' && s[i+1] >= 'A' && s[i+1] <= 'Z' && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if _, ok := ibanLength[s[i:i+2]]; ok {
				ws = append(ws, span{i, min(len(s), i+48)})
			}
		}
	}
	return mergeWindows(s, ws)
}

// ibanLength is the IBAN length per country (ISO 13616 registry).
var ibanLength = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
	"FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
	"HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
	"LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31,
	"MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VA": 22,
	"VG": 24, "XK": 20,
}

func ibans(text string) []Finding {
	var out []Finding
	for _, loc := range findInWindows(ibanCandidate, text, ibanWindows(text)) {
		s := loc[0]
		want, ok := ibanLength[text[s:s+2]]
		if !ok {
			continue
		}
		// Take exactly the country's length of characters; what follows must
		// not continue the same token.
		var compact []byte
		e := s
		for e < loc[1] && len(compact) < want {
			if text[e] != ' ' {
				compact = append(compact, text[e])
			}
			e++
		}
		if len(compact) != want || e < len(text) && isAlnum(text[e]) {
			continue
		}
		if !ibanChecksum(string(compact)) {
			continue
		}
		out = append(out, Finding{Kind: KindPII, Rule: "iban", Severity: action.SeverityMedium, Detail: "IBAN (" + text[s:s+2] + ", passes mod-97 check)", Start: s, End: e})
	}
	return out
}

// ibanChecksum moves the first four characters to the end, maps letters to
// 10..35 and checks that the number is 1 modulo 97 (ISO 7064), digit by digit
// so that no big integers are needed.
func ibanChecksum(iban string) bool {
	r := iban[4:] + iban[:4]
	m := 0
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case isDigit(c):
			m = (m*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			m = (m*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return m == 1
}

// dedupe removes findings with the same rule and span, keeping the first.
func dedupe(fs []Finding) []Finding {
	type key struct {
		rule       string
		start, end int
	}
	seen := make(map[key]bool, len(fs))
	out := fs[:0:0]
	for _, f := range fs {
		k := key{f.Rule, f.Start, f.End}
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	return out
}
