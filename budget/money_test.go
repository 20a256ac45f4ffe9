package budget

import (
	"math"
	"testing"
)

func TestParseMicros(t *testing.T) {
	for _, c := range []struct {
		in      string
		roundUp bool
		want    int64
		err     error
	}{
		{"5000", false, 5_000_000_000, nil},
		{"0.004", false, 4000, nil},
		{"0.1", false, 100_000, nil},
		{"1e3", false, 1_000_000_000, nil},
		{"1.5E-3", false, 1500, nil},
		{"0.000001", false, 1, nil},
		{"0.0000010", false, 1, nil},
		{"-2.5", false, -2_500_000, nil},
		{"0", false, 0, nil},
		{"0e-500", false, 0, errMoneyRange},
		{"0.0000001", false, 0, errMoneyPrecision},
		{"0.0000001", true, 1, nil},
		{"1.0000011", true, 1_000_002, nil},
		{"9223372036854.775807", false, math.MaxInt64, nil},
		{"9223372036854.775808", false, 0, errMoneyRange},
		{"1e20", false, 0, errMoneyRange},
		{"abc", false, 0, errMoneySyntax},
		{"1.", false, 0, errMoneySyntax},
		{".5", false, 0, errMoneySyntax},
		{"1e", false, 0, errMoneySyntax},
	} {
		got, err := parseMicros(c.in, c.roundUp)
		if err != c.err || got != c.want {
			t.Errorf("parseMicros(%q, %v) = %d, %v; want %d, %v", c.in, c.roundUp, got, err, c.want, c.err)
		}
	}
}

func TestMicrosFromFloatIsExactForDecimalInput(t *testing.T) {
	for f, want := range map[float64]int64{0.004: 4000, 0.1: 100_000, 0.3: 300_000, 1e-7: 1, 12.345678: 12_345_678, 4e-6: 4} {
		if got, err := microsFromFloat(f); err != nil || got != want {
			t.Errorf("microsFromFloat(%v) = %d, %v; want %d", f, got, err, want)
		}
	}
	if _, err := microsFromFloat(math.NaN()); err == nil {
		t.Error("NaN accepted")
	}
}

func TestFormatMicros(t *testing.T) {
	for m, want := range map[int64]string{0: "0", 4000: "0.004", 5_000_000_000: "5000", 1_500_000: "1.5", -1: "-0.000001"} {
		if got := formatMicros(m); got != want {
			t.Errorf("formatMicros(%d) = %q, want %q", m, got, want)
		}
	}
	for m, want := range map[int64]string{5_000_000_000: "5000.00", 1_500_000: "1.50", 4000: "0.004"} {
		if got := formatUSD(m); got != want {
			t.Errorf("formatUSD(%d) = %q, want %q", m, got, want)
		}
	}
}

func TestThresholdArithmeticIsExact(t *testing.T) {
	if got := capOf(5_000_000_000, ppm(0.85)); got != 4_250_000_000 {
		t.Errorf("capOf 85%% of 5000 USD = %d", got)
	}
	if got := capOf(math.MaxInt64, 1e6); got != math.MaxInt64 {
		t.Errorf("capOf(max, 100%%) = %d", got)
	}
	if got := capOf(7, ppm(0.5)); got != 3 {
		t.Errorf("capOf(7, 50%%) = %d, want 3", got)
	}
	if !reaches(85, 100, ppm(0.85)) || reaches(84, 100, ppm(0.85)) {
		t.Error("reaches is wrong at the 85% boundary")
	}
	if !reaches(math.MaxInt64, math.MaxInt64, 1e6) {
		t.Error("reaches overflows")
	}
}

func FuzzParseMicros(f *testing.F) {
	for _, s := range []string{"0", "0.004", "1e3", "-1.5E-2", "9223372036854.775807", "1e-400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseMicros(s, false)
		if err != nil || v < 0 {
			return
		}
		// Whatever is accepted exactly must survive a round trip.
		back, err := parseMicros(formatMicros(v), false)
		if err != nil || back != v {
			t.Fatalf("%q → %d → %q → %d, %v", s, v, formatMicros(v), back, err)
		}
	})
}
