package budget

import (
	"testing"
	"time"
)

func mustPeriod(t *testing.T, s, tz string) period {
	t.Helper()
	p, err := parsePeriod(s, tz)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCalendarPeriodsFollowTheTimeZone(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	// 23:30 UTC on Sunday 30 March 2025 is already Monday 31 March in Paris
	// (UTC+2 after that morning's DST change).
	now := time.Date(2025, 3, 30, 23, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		period, tz string
		start, end time.Time
	}{
		{"daily", "UTC", time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)},
		{"daily", "Europe/Paris", time.Date(2025, 3, 31, 0, 0, 0, 0, paris), time.Date(2025, 4, 1, 0, 0, 0, 0, paris)},
		{"weekly", "UTC", time.Date(2025, 3, 24, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)},
		{"weekly", "Europe/Paris", time.Date(2025, 3, 31, 0, 0, 0, 0, paris), time.Date(2025, 4, 7, 0, 0, 0, 0, paris)},
		{"monthly", "UTC", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"monthly", "Asia/Tokyo", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Add(-9 * time.Hour), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC).Add(-9 * time.Hour)},
	} {
		sp := mustPeriod(t, c.period, c.tz).at(now, "", "")
		if !sp.start.Equal(c.start) || !sp.end.Equal(c.end) {
			t.Errorf("%s in %s: [%v, %v), want [%v, %v)", c.period, c.tz, sp.start, sp.end, c.start, c.end)
		}
		if len(sp.keys) != 1 || sp.keys[0] != sp.key {
			t.Errorf("%s: keys %v", c.period, sp.keys)
		}
	}
}

func TestRollingWindowCoversAtLeastTheWindow(t *testing.T) {
	p := mustPeriod(t, "5h", "UTC")
	if p.width != 25*time.Minute {
		t.Fatalf("bucket width %s", p.width)
	}
	now := time.Date(2025, 6, 1, 12, 7, 0, 0, time.UTC)
	sp := p.at(now, "", "")
	if len(sp.keys) != rollingBuckets+1 {
		t.Fatalf("%d keys", len(sp.keys))
	}
	if now.Sub(sp.start) < 5*time.Hour || now.Sub(sp.start) > 5*time.Hour+p.width {
		t.Errorf("window starts %s before now", now.Sub(sp.start))
	}
	// A moment in the same bucket records under the same key.
	if p.at(now.Add(time.Minute), "", "").key != sp.key {
		t.Error("key changed within a bucket")
	}
	if d := mustPeriod(t, "7d", "UTC").window; d != 7*24*time.Hour {
		t.Errorf("7d = %s", d)
	}
}

func TestSessionAndNonePeriods(t *testing.T) {
	now := time.Unix(0, 0)
	p := mustPeriod(t, "session", "UTC")
	k := p.at(now, "researcher-1", "s-42").key
	if agent, session, ok := parseSessionKey(k); !ok || agent != "researcher-1" || session != "s-42" {
		t.Errorf("session key %q reads back as %q, %q, %v", k, agent, session, ok)
	}
	// Session ids are per agent: no two pairs share a counter.
	if p.at(now, "a", "bs").key == p.at(now, "ab", "s").key || p.at(now, "a2", "s-42").key == k {
		t.Error("two agents' sessions share a counter")
	}
	a, b := mustPeriod(t, "none", "UTC").at(now, "", "x"), mustPeriod(t, "none", "UTC").at(now.Add(1000*time.Hour), "", "y")
	if a.key != b.key {
		t.Error("period none changed key over time")
	}
}
