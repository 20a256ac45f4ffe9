package budget

import (
	"errors"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Money is held as int64 micro-dollars: sums of many small costs stay exact,
// and comparisons against a limit never depend on float rounding.
const microsPerDollar = 1_000_000

var (
	errMoneySyntax    = errors.New("not a decimal number")
	errMoneyRange     = errors.New("out of range")
	errMoneyPrecision = errors.New("finer than a millionth of a dollar")
)

// parseMicros reads a JSON number of dollars into micro-dollars without going
// through a float. Digits below a micro-dollar are an error unless roundUp is
// set, in which case they round up: a cost that is counted is never less than
// the cost that was reported.
func parseMicros(s string, roundUp bool) (int64, error) {
	neg := false
	if strings.HasPrefix(s, "-") {
		neg = true
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || s[i+1:] == "" {
			return 0, errMoneySyntax
		}
		if e > 400 || e < -400 {
			return 0, errMoneyRange
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart == "" || (strings.Contains(mant, ".") && frac == "") {
		return 0, errMoneySyntax
	}
	digits := intPart + frac
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, errMoneySyntax
		}
	}
	shift := exp - len(frac) + 6 // power of ten that turns digits into micros
	digits = strings.TrimLeft(digits, "0")
	inexact := false
	if shift < 0 {
		drop := -shift
		if drop >= len(digits) {
			inexact = digits != ""
			digits = ""
		} else {
			inexact = strings.Trim(digits[len(digits)-drop:], "0") != ""
			digits = digits[:len(digits)-drop]
		}
		shift = 0
	}
	if inexact && !roundUp {
		return 0, errMoneyPrecision
	}
	var v int64
	for _, c := range digits {
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, errMoneyRange
		}
		v = v*10 + d
	}
	for ; shift > 0 && v != 0; shift-- {
		if v > math.MaxInt64/10 {
			return 0, errMoneyRange
		}
		v *= 10
	}
	if inexact {
		if v == math.MaxInt64 {
			return 0, errMoneyRange
		}
		v++
	}
	if neg {
		v = -v
	}
	return v, nil
}

// microsFromFloat converts a dollar amount that arrived as a float (an
// Action's estimate, an Outcome's cost) via its shortest decimal form, so
// 0.004 becomes exactly 4000 micros, rounding anything finer up.
func microsFromFloat(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errMoneyRange
	}
	return parseMicros(strconv.FormatFloat(f, 'g', -1, 64), true)
}

// formatMicros writes micro-dollars as the shortest exact decimal of dollars,
// which is also a valid JSON number: 5000000000 is "5000", 4000 is "0.004".
func formatMicros(m int64) string {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u/microsPerDollar, 10)
	if f := u % microsPerDollar; f != 0 {
		s += "." + strings.TrimRight(strconv.FormatUint(f+microsPerDollar, 10)[1:], "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

// formatUSD is formatMicros with at least two decimals, for messages.
func formatUSD(m int64) string {
	s := formatMicros(m)
	i := strings.IndexByte(s, '.')
	switch {
	case i < 0:
		return s + ".00"
	case len(s)-i == 2:
		return s + "0"
	}
	return s
}

// ppm converts a fraction in [0, 1] to parts per million, the unit in which
// thresholds are compared against integer counters.
func ppm(f float64) int64 { return int64(math.Round(f * 1e6)) }

// capOf is floor(limit × p / 10⁶): the most a counter may reach under a
// threshold of p parts per million.
func capOf(limit, p int64) int64 {
	hi, lo := bits.Mul64(uint64(limit), uint64(p))
	q, _ := bits.Div64(hi, lo, 1e6) // p ≤ 10⁶ keeps hi below the divisor
	return int64(q)
}

// reaches reports whether x / limit ≥ p / 10⁶, exactly.
func reaches(x, limit, p int64) bool {
	xh, xl := bits.Mul64(uint64(x), 1e6)
	lh, ll := bits.Mul64(uint64(limit), uint64(p))
	return xh > lh || (xh == lh && xl >= ll)
}

// addSat adds non-negative counters, saturating instead of wrapping.
func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
