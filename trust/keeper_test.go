package trust_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/store/sqlite"
	"github.com/agentgov/agentgov/trust"
)

var bg = context.Background()

// journal stands in for the audit log: it keeps every entry, and fails
// while fail is set, as an audit log that cannot be written.
type journal struct {
	mu      sync.Mutex
	entries []entry
	fail    bool
	kills   []string
}

type entry struct {
	kind   string
	record string
}

func (j *journal) change(ctx context.Context, kind string, apply func(ctx context.Context, record func(context.Context, any) error) error) error {
	return apply(ctx, func(_ context.Context, rec any) error {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.fail {
			return errors.New("audit log unavailable")
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		j.entries = append(j.entries, entry{kind, string(b)})
		return nil
	})
}

func (j *journal) kill(_ context.Context, agent, reason string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.kills = append(j.kills, agent+": "+reason)
	return nil
}

func (j *journal) kinds() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, e := range j.entries {
		out = append(out, e.kind)
	}
	return out
}

func (j *journal) last(kind string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := len(j.entries) - 1; i >= 0; i-- {
		if j.entries[i].kind == kind {
			return j.entries[i].record
		}
	}
	return ""
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	k     *trust.Keeper
	st    *sqlite.DB
	j     *journal
	clock *clock
}

func newKeeper(t *testing.T, cfg trust.Config, r trust.Rings) *fixture {
	t.Helper()
	st, err := sqlite.Open(bg, filepath.Join(t.TempDir(), "agentgov.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return keeperOn(t, st, cfg, r)
}

func keeperOn(t *testing.T, st *sqlite.DB, cfg trust.Config, r trust.Rings) *fixture {
	t.Helper()
	cfg.Fill()
	r.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	k, err := trust.New(bg, trust.Options{Store: st, Config: cfg, Rings: r, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	k.Bind(j.change, j.kill)
	return &fixture{k: k, st: st, j: j, clock: c}
}

func (f *fixture) flush(t *testing.T) {
	t.Helper()
	if err := f.k.Flush(bg); err != nil {
		t.Fatal(err)
	}
}

func deny(agent string, sev action.Severity) trust.Signal {
	return trust.Signal{Agent: agent, Kind: trust.KindDeny, Severity: sev, Decision: "dec_1", Detail: "no-etc"}
}

// What the engine observes moves scores by the configured weights, in one
// audited batch; a score crossing into another tier is recorded too, and
// policies see the new score at once.
func TestObservedEventsMoveScoresInOneAuditedBatch(t *testing.T) {
	f := newKeeper(t, trust.Config{}, trust.Rings{})
	if v := f.k.View("a1"); v.Score() != 500 || v.Tier() != "standard" {
		t.Fatalf("a new agent: %d %s", v.Score(), v.Tier())
	}
	f.k.Observe(deny("a1", action.SeverityHigh))
	f.k.Observe(deny("a1", action.SeverityHigh))
	f.k.Observe(trust.Signal{Agent: "a1", Kind: trust.KindFlagged})
	f.k.Observe(trust.Signal{Agent: "a2", Kind: trust.KindOutcomeOK})
	f.k.Observe(trust.Signal{Agent: "a2", Kind: trust.KindOutcomeOK})
	f.flush(t)
	if v := f.k.View("a1"); v.Score() != 500-50-50-5 || v.Tier() != "probationary" {
		t.Fatalf("a1: %d %s", v.Score(), v.Tier())
	}
	if v := f.k.View("a2"); v.Score() != 502 {
		t.Fatalf("a2: %d", v.Score())
	}
	if got := strings.Join(f.j.kinds(), ","); got != "trust,trust.tier" {
		t.Fatalf("entries %s", got)
	}
	batch := f.j.last("trust")
	for _, want := range []string{`"agent":"a1","delta":-105`, `"kind":"deny"`, `"decision":"dec_1"`, `"agent":"a2","delta":2,"clean_outcomes":2`} {
		if !strings.Contains(batch, want) {
			t.Errorf("batch entry %s lacks %s", batch, want)
		}
	}
	if tier := f.j.last("trust.tier"); !strings.Contains(tier, `"from":{"score":500,"tier":"standard"}`) || !strings.Contains(tier, `"to":{"score":395,"tier":"probationary"}`) {
		t.Fatalf("tier entry %s", tier)
	}
	rep, err := f.k.Report(bg, "a1", 10)
	if err != nil || rep.Score != 395 || len(rep.Events) != 3 || rep.Events[0].Kind != trust.KindFlagged {
		t.Fatalf("report %+v, %v", rep, err)
	}
	// Nothing queued: nothing recorded.
	f.flush(t)
	if n := len(f.j.kinds()); n != 2 {
		t.Fatalf("%d entries after an empty flush", n)
	}
}

// An audit log that cannot be written changes no score, and loses no
// event: they are applied with the next batch that can be recorded.
func TestEventsWaitForTheAuditLog(t *testing.T) {
	f := newKeeper(t, trust.Config{}, trust.Rings{})
	f.k.Observe(deny("a1", action.SeverityCritical))
	f.j.fail = true
	if err := f.k.Flush(bg); err == nil {
		t.Fatal("flush without an audit log succeeded")
	}
	if s, err := f.st.TrustScores(bg); err != nil || len(s) != 0 || f.k.View("a1").Score() != 500 {
		t.Fatalf("stored %+v, %v; view %d", s, err, f.k.View("a1").Score())
	}
	f.j.fail = false
	f.k.Observe(deny("a1", action.SeverityLow))
	f.flush(t)
	if got := f.k.View("a1").Score(); got != 500-100-5 {
		t.Fatalf("score %d", got)
	}
}

// A score below the floor engages the kill switch on that agent, naming
// the drop; a score that only rises does not.
func TestFloorEngagesTheKillSwitch(t *testing.T) {
	f := newKeeper(t, trust.Config{KillBelow: 420}, trust.Rings{})
	f.k.Observe(deny("a1", action.SeverityHigh))
	f.flush(t)
	if len(f.j.kills) != 0 {
		t.Fatalf("killed at 450: %v", f.j.kills)
	}
	f.k.Observe(deny("a1", action.SeverityHigh))
	f.flush(t)
	if len(f.j.kills) != 1 || !strings.Contains(f.j.kills[0], "a1: trust score fell to 400 (from 450), below trust.kill_below 420") {
		t.Fatalf("kills %v", f.j.kills)
	}
	f.k.Observe(trust.Signal{Agent: "a1", Kind: trust.KindOutcomeOK})
	f.flush(t)
	if len(f.j.kills) != 1 {
		t.Fatalf("a rising score killed again: %v", f.j.kills)
	}
}

func act(agent, tool string) *action.Action {
	return &action.Action{Agent: action.Agent{ID: agent}, Tool: action.Tool{Name: tool}}
}

// Rings: the base ring is demoted as soon as the tier falls below its
// min_tier, and the denial names the ring, the demotion and what is
// outside it.
func TestRingsDemoteWithTheTier(t *testing.T) {
	f := newKeeper(t, trust.Config{Initial: 750}, rings())
	now := f.clock.Now()
	if rs := f.k.RingOf("ops-1", now); rs.Ring != 1 || rs.Demoted {
		t.Fatalf("ops-1 at 750: %+v", rs)
	}
	if rs := f.k.RingOf("bot", now); rs.Ring != 2 {
		t.Fatalf("default ring: %+v", rs)
	}
	a := act("ops-1", "write_file")
	a.Destination = "evil.example"
	if reason, ok := f.k.Admit(trust.TargetOf(a), now); !ok {
		t.Fatalf("ring 1 refused: %s", reason)
	}
	f.k.Observe(deny("ops-1", action.SeverityCritical)) // 650: standard
	f.flush(t)
	reason, ok := f.k.Admit(trust.TargetOf(a), now)
	if ok {
		t.Fatal("a standard agent kept ring 1")
	}
	reasonHas(t, reason, "ring: agent ops-1 holds ring 2", "demoted from ring 1", "tier standard is below ring 1's min_tier trusted",
		"ring 2 (worker) does not allow destination evil.example (allows *.internal)")
	if tier := f.j.last("trust.tier"); !strings.Contains(tier, `"from":{"score":750,"tier":"trusted","ring":1}`) || !strings.Contains(tier, `"to":{"score":650,"tier":"standard","ring":2}`) {
		t.Fatalf("tier entry %s", tier)
	}
	f.k.Observe(deny("ops-1", action.SeverityCritical)) // 550
	f.k.Observe(deny("ops-1", action.SeverityCritical)) // 450: probationary
	f.flush(t)
	if reason, ok := f.k.Admit(trust.TargetOf(act("ops-1", "write_file")), now); ok || !strings.Contains(reason, "ring 3 (read-only) does not allow tool write_file (allows read_*, */list_*)") {
		t.Fatalf("ring 3 let a write through: %v %s", ok, reason)
	}
	if reason, ok := f.k.Admit(trust.TargetOf(act("ops-1", "read_file")), now); !ok {
		t.Fatalf("ring 3 refused a read: %s", reason)
	}
	gh := act("ops-1", "list_issues")
	gh.Tool.Server = "github"
	if reason, ok := f.k.Admit(trust.TargetOf(gh), now); !ok {
		t.Fatalf("ring 3 refused github/list_issues: %s", reason)
	}
	m := act("ops-1", "")
	m.Point, m.Model = action.PreModelCall, "small-1"
	if reason, ok := f.k.Admit(trust.TargetOf(m), now); ok || !strings.Contains(reason, "does not allow point pre_model_call") {
		t.Fatalf("ring 3 let a model call through: %s", reason)
	}
}

// An elevation holds the ring until its ttl, then the ring reverts and the
// end is recorded once; a tier drop ends it at once.
func TestElevationRevertsAfterItsTTLAndOnATierDrop(t *testing.T) {
	f := newKeeper(t, trust.Config{}, rings())
	now := f.clock.Now()
	if err := f.k.CheckElevation("bot", 2, time.Minute, now); !errors.Is(err, trust.ErrRefused) {
		t.Fatalf("asking for the ring it holds: %v", err)
	}
	if err := f.k.CheckElevation("bot", 1, 2*time.Hour, now); err == nil || !strings.Contains(err.Error(), "max_elevation") {
		t.Fatalf("ttl beyond max_elevation: %v", err)
	}
	if err := f.k.CheckElevation("bot", 1, 10*time.Minute, now); err != nil {
		t.Fatal(err)
	}
	el, err := f.k.Grant(bg, "apr_1", "bot", 1, 10*time.Minute, "deploy", "ops")
	if err != nil || el.Floor != trust.Standard || !el.Until.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("grant %+v, %v", el, err)
	}
	if rs := f.k.RingOf("bot", now); rs.Ring != 1 || rs.Elevation == nil || rs.Elevation.Ticket != "apr_1" {
		t.Fatalf("elevated: %+v", rs)
	}
	if _, ok := f.k.Admit(trust.TargetOf(act("bot", "write_file")), now); !ok {
		t.Fatal("ring 1 refused a write")
	}
	f.clock.Add(10 * time.Minute)
	if rs := f.k.RingOf("bot", f.clock.Now()); rs.Ring != 2 || rs.Elevation != nil {
		t.Fatalf("after ttl: %+v", rs)
	}
	f.k.ExpireElevations(bg)
	f.k.ExpireElevations(bg)
	if end := f.j.last("ring.elevation"); !strings.Contains(end, `"event":"end"`) || !strings.Contains(end, `"ended":"expired"`) {
		t.Fatalf("end entry %s", end)
	}
	if n := strings.Count(strings.Join(f.j.kinds(), ","), "ring.elevation"); n != 2 {
		t.Fatalf("%d ring.elevation entries, want grant and one end", n)
	}
	// Misbehaving while elevated costs the elevation.
	if _, err := f.k.Grant(bg, "apr_2", "bot", 1, 10*time.Minute, "deploy", "ops"); err != nil {
		t.Fatal(err)
	}
	f.k.Observe(deny("bot", action.SeverityHigh)) // 450: probationary, below the floor standard
	f.flush(t)
	if rs := f.k.RingOf("bot", f.clock.Now()); rs.Elevation != nil || rs.Ring != 3 {
		t.Fatalf("after a tier drop: %+v", rs)
	}
	if end := f.j.last("ring.elevation"); !strings.Contains(end, `"ended":"tier_dropped"`) {
		t.Fatalf("end entry %s", end)
	}
	if list, err := f.st.Elevations(bg); err != nil || len(list) != 0 {
		t.Fatalf("stored elevations %+v, %v", list, err)
	}
}

// Another process sharing the store sees the scores once it reloads (a
// replica does when the store announces the change).
func TestReloadSeesAnotherProcesssScores(t *testing.T) {
	f := newKeeper(t, trust.Config{}, trust.Rings{})
	g := keeperOn(t, f.st, trust.Config{}, trust.Rings{})
	f.k.Observe(deny("a1", action.SeverityMedium))
	f.flush(t)
	if g.k.View("a1").Score() != 500 {
		t.Fatal("saw the change before reloading")
	}
	if err := g.k.Reload(bg); err != nil {
		t.Fatal(err)
	}
	if got := g.k.View("a1").Score(); got != 485 {
		t.Fatalf("after reload: %d", got)
	}
}

// Decay moves scores back toward the initial score, recorded first.
func TestDecayIsRecorded(t *testing.T) {
	f := newKeeper(t, trust.Config{Decay: trust.Decay{Every: time.Hour, Step: 20}}, trust.Rings{})
	f.k.Observe(deny("a1", action.SeverityHigh))
	f.flush(t)
	f.clock.Add(time.Hour)
	if err := f.k.Decay(bg); err != nil {
		t.Fatal(err)
	}
	if got := f.k.View("a1").Score(); got != 470 {
		t.Fatalf("after decay: %d", got)
	}
	if d := f.j.last("trust.decay"); !strings.Contains(d, `"step":20`) {
		t.Fatalf("decay entry %q", d)
	}
}

// An agent denied in a tight loop loses every point, but the batch lists a
// bounded number of its events and counts the rest: memory and audit
// entries stay bounded whatever it sends.
func TestADenialFloodIsCountedInFullAndListedInPart(t *testing.T) {
	f := newKeeper(t, trust.Config{}, trust.Rings{})
	for range 1000 {
		f.k.Observe(deny("a1", action.SeverityNone))
	}
	f.flush(t)
	if got := f.k.View("a1").Score(); got != 0 {
		t.Fatalf("score after 1000 denies of 2 points: %d", got)
	}
	batch := f.j.last("trust")
	if n := strings.Count(batch, `"kind":"deny"`); n != 32 || !strings.Contains(batch, `"more_events":968`) || !strings.Contains(batch, `"delta":-2000`) {
		t.Fatalf("batch lists %d events: %.300s", n, batch)
	}
}

// A score falling into a lower tier is told to whoever listens (the
// server raises a trust_drop notice); a rise is not.
func TestTierDropsAreTold(t *testing.T) {
	f := newKeeper(t, trust.Config{}, trust.Rings{})
	var drops []trust.Drop
	f.k.OnDrop(func(_ context.Context, d trust.Drop) { drops = append(drops, d) })
	f.k.Observe(deny("a1", action.SeverityHigh))
	f.flush(t)
	for range 60 {
		f.k.Observe(trust.Signal{Agent: "a1", Kind: trust.KindOutcomeOK})
	}
	f.flush(t)
	want := trust.Drop{Agent: "a1", FromScore: 500, ToScore: 450, FromTier: trust.Standard, ToTier: trust.Probationary}
	if len(drops) != 1 || drops[0] != want {
		t.Fatalf("drops %+v, want only %+v", drops, want)
	}
}

// An agent demoted for a deny cannot farm harmless calls to win its ring
// back at once: clean outcomes raise its score by at most
// trust.max_rise_per_hour in an hour.
func TestCleanOutcomesCannotBeFarmed(t *testing.T) {
	f := newKeeper(t, trust.Config{Initial: 750}, rings())
	f.k.Observe(deny("ops-1", action.SeverityHigh)) // 700: still trusted
	f.k.Observe(deny("ops-1", action.SeverityLow))  // 695: standard, ring 2
	f.flush(t)
	for range 500 {
		f.k.Observe(trust.Signal{Agent: "ops-1", Kind: trust.KindOutcomeOK})
	}
	f.flush(t)
	if got := f.k.View("ops-1").Score(); got != 695+20 {
		t.Fatalf("after 500 clean outcomes in an hour: %d, want %d", got, 715)
	}
	f.clock.Add(time.Hour)
	f.k.Observe(trust.Signal{Agent: "ops-1", Kind: trust.KindOutcomeOK})
	f.flush(t)
	if got := f.k.View("ops-1").Score(); got != 716 {
		t.Fatalf("in the next hour: %d", got)
	}
}
