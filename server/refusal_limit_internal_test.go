package server

import (
	"testing"
	"time"
)

func TestRefusalLimiterCarriesWhatItDidNotAudit(t *testing.T) {
	var l refusalLimiter
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for i := range refusalsPerSource {
		if ok, n := l.admit(t0, "10.0.0.1"); !ok || n != 0 {
			t.Fatalf("refusal %d: audited=%v carried=%d", i, ok, n)
		}
	}
	for range 7 {
		if ok, _ := l.admit(t0.Add(time.Second), "10.0.0.1"); ok {
			t.Fatal("a refusal past the source's share was audited")
		}
	}
	// Another source has its own share.
	if ok, _ := l.admit(t0.Add(time.Second), "10.0.0.2"); !ok {
		t.Fatal("a second source was not audited")
	}
	// The next window audits again, and says how many went unaudited.
	if ok, n := l.admit(t0.Add(refusalWindow), "10.0.0.1"); !ok || n != 7 {
		t.Fatalf("next window: audited=%v carried=%d, want true 7", ok, n)
	}
	if ok, n := l.admit(t0.Add(refusalWindow), "10.0.0.1"); !ok || n != 0 {
		t.Fatalf("after the carry: audited=%v carried=%d, want true 0", ok, n)
	}
}

// Many sources together are bounded too, and the sources it stops
// tracking are still counted.
func TestRefusalLimiterBoundsManySources(t *testing.T) {
	var l refusalLimiter
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	audited := 0
	for i := range 5000 {
		if ok, _ := l.admit(t0, "src-"+string(rune(i))); ok {
			audited++
		}
	}
	if audited != refusalsPerWindow {
		t.Fatalf("%d audited in one window from 5000 sources, want %d", audited, refusalsPerWindow)
	}
	if len(l.suppressed) > refusalSourcesLimit {
		t.Fatalf("%d sources tracked, want at most %d", len(l.suppressed), refusalSourcesLimit)
	}
	total := l.other
	for _, n := range l.suppressed {
		total += n
	}
	if total != 5000-refusalsPerWindow {
		t.Fatalf("%d refusals counted, want %d", total, 5000-refusalsPerWindow)
	}
}
