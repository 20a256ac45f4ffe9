package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// journal keeps what the injector appends, as the audit log would; fail
// makes every append fail.
type journal struct {
	mu      sync.Mutex
	entries []string // kind, then the record's JSON
	fail    bool
}

func (j *journal) Append(_ context.Context, kind string, rec any) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail {
		return 0, errors.New("disk full")
	}
	b, _ := json.Marshal(rec)
	j.entries = append(j.entries, kind+" "+string(b))
	return uint64(len(j.entries) - 1), nil
}

func (j *journal) all() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.entries, "\n")
}

// dice returns the numbers given, in turn, as the random source.
func dice(rolls ...float64) func() float64 {
	i := 0
	return func() float64 {
		r := rolls[i%len(rolls)]
		i++
		return r
	}
}

func build(t *testing.T, src []Experiment, opt Options) *Injector {
	t.Helper()
	Fill(src)
	if err := Validate(src); err != nil {
		t.Fatal(err)
	}
	return New(src, opt)
}

var noon = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestANilInjectorInjectsNothing(t *testing.T) {
	var in *Injector
	if New(nil, Options{}) != nil {
		t.Fatal("no experiments built an injector")
	}
	if _, ok := in.Inject(context.Background(), Call{Server: "fs", Tool: "read"}); ok {
		t.Fatal("a nil injector injected")
	}
	if l := in.List(); l == nil || len(l) != 0 {
		t.Fatalf("list %v, want empty", l)
	}
	if _, err := in.Switch(context.Background(), "x", false, "ops", ""); !errors.Is(err, ErrUnknown) {
		t.Fatalf("switch on nil: %v", err)
	}
}

// The chance is drawn from the injected source: a roll under the
// probability injects, one at or over it does not.
func TestProbabilityIsDrawnFromTheRandomSource(t *testing.T) {
	j := &journal{}
	in := build(t, []Experiment{{ID: "flaky", Match: Match{Servers: []string{"fs"}}, Fault: Drop, Probability: 0.3}},
		Options{Audit: j, Clock: at(noon), Rand: dice(0.29, 0.3, 0.95, 0.0)})
	var got []bool
	for range 4 {
		_, ok := in.Inject(context.Background(), Call{Server: "fs", Tool: "read", Decision: "d1"})
		got = append(got, ok)
	}
	if want := []bool{true, false, false, true}; !equal(got, want) {
		t.Fatalf("injected %v, want %v", got, want)
	}
	if s := in.List()[0]; s.Injected != 2 {
		t.Fatalf("injected count %d, want 2", s.Injected)
	}
	if n := strings.Count(j.all(), "chaos.fault"); n != 2 {
		t.Fatalf("%d fault records, want 2:\n%s", n, j.all())
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMatchingToolsServersAndModels(t *testing.T) {
	in := build(t, []Experiment{
		{ID: "search-tools", Match: Match{Tools: []string{"search/web_*"}}, Fault: Latency, Probability: 1, LatencyMS: 5},
		{ID: "any-write", Match: Match{Tools: []string{"write_*"}, Servers: []string{"fs"}}, Fault: Drop, Probability: 1},
		{ID: "gpt", Match: Match{Models: []string{"gpt-4o*"}}, Fault: Error, Probability: 1, Error: &ErrorSpec{Message: "overloaded", Code: 503}},
	}, Options{Audit: &journal{}, Clock: at(noon), Rand: dice(0)})
	for _, tc := range []struct {
		c    Call
		want string // experiment, "" for none
	}{
		{Call{Server: "search", Tool: "web_search"}, "search-tools"},
		{Call{Server: "other", Tool: "web_search"}, ""},
		{Call{Server: "fs", Tool: "write_file"}, "any-write"},
		{Call{Server: "git", Tool: "write_file"}, ""},
		{Call{Server: "fs", Tool: "read_file"}, ""},
		{Call{Model: "gpt-4o-mini"}, "gpt"},
		{Call{Model: "claude-sonnet-4"}, ""},
		// A model name that looks like a tool matches no tool experiment.
		{Call{Model: "write_file"}, ""},
	} {
		f, ok := in.Inject(context.Background(), tc.c)
		if ok != (tc.want != "") || f.Experiment != tc.want {
			t.Errorf("%+v: got %q (%v), want %q", tc.c, f.Experiment, ok, tc.want)
		}
	}
	f, _ := in.Inject(context.Background(), Call{Model: "gpt-4o"})
	if f.Kind != Error || f.Message != "overloaded" || f.Code != 503 {
		t.Errorf("error fault %+v", f)
	}
	f, _ = in.Inject(context.Background(), Call{Server: "search", Tool: "web_fetch"})
	if f.Kind != Latency || f.Wait != 5*time.Millisecond {
		t.Errorf("latency fault %+v", f)
	}
}

// Outside from/until an experiment injects nothing, and says so.
func TestWindowsBoundWhenAnExperimentInjects(t *testing.T) {
	from, until := noon, noon.Add(time.Hour)
	now := from.Add(-time.Second)
	in := build(t, []Experiment{{ID: "lunch", Match: Match{Tools: []string{"*"}}, Fault: Drop, Probability: 1, From: &Time{from}, Until: &Time{until}}},
		Options{Audit: &journal{}, Clock: func() time.Time { return now }, Rand: dice(0)})
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{from.Add(-time.Second), false},
		{from, true},
		{until.Add(-time.Nanosecond), true},
		{until, false},
		{until.Add(time.Hour), false},
	} {
		now = tc.at
		if _, ok := in.Inject(context.Background(), Call{Server: "fs", Tool: "read"}); ok != tc.want {
			t.Errorf("at %v: injected %v, want %v", tc.at, ok, tc.want)
		}
		if s := in.List()[0]; s.Active != tc.want || !s.Enabled {
			t.Errorf("at %v: status %+v", tc.at, s)
		}
	}
}

// The first experiment whose chance comes up wins; one whose chance does
// not leaves the call to the next.
func TestExperimentsAreTriedInOrder(t *testing.T) {
	in := build(t, []Experiment{
		{ID: "rare", Match: Match{Tools: []string{"*"}}, Fault: Drop, Probability: 0.1},
		{ID: "always", Match: Match{Tools: []string{"*"}}, Fault: Error, Probability: 1},
	}, Options{Audit: &journal{}, Clock: at(noon), Rand: dice(0.05, 0.5, 0.99)})
	f, _ := in.Inject(context.Background(), Call{Server: "s", Tool: "t"})
	if f.Experiment != "rare" {
		t.Fatalf("first roll under 0.1: %q", f.Experiment)
	}
	f, _ = in.Inject(context.Background(), Call{Server: "s", Tool: "t"})
	if f.Experiment != "always" {
		t.Fatalf("roll over 0.1: %q, want the next experiment", f.Experiment)
	}
}

// A fault that cannot be written to the audit log is not injected, and a
// switch that cannot be written does not happen.
func TestNothingHappensUnrecorded(t *testing.T) {
	j := &journal{fail: true}
	in := build(t, []Experiment{{ID: "x", Match: Match{Tools: []string{"*"}}, Fault: Drop, Probability: 1}},
		Options{Audit: j, Clock: at(noon), Rand: dice(0)})
	if _, ok := in.Inject(context.Background(), Call{Server: "s", Tool: "t"}); ok {
		t.Fatal("a fault was injected without its audit record")
	}
	if _, err := in.Switch(context.Background(), "x", false, "ops", "done"); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("switch without audit: %v", err)
	}
	if !in.List()[0].Enabled {
		t.Fatal("the experiment was switched off without a record of it")
	}
	if in.List()[0].Injected != 0 {
		t.Fatal("an unrecorded fault was counted")
	}
	noAudit := build(t, []Experiment{{ID: "x", Match: Match{Tools: []string{"*"}}, Fault: Drop, Probability: 1}}, Options{Rand: dice(0)})
	if _, ok := noAudit.Inject(context.Background(), Call{Server: "s", Tool: "t"}); ok {
		t.Fatal("an injector without an audit log injected")
	}
}

func TestSwitchingIsAuditedWithWhoAndWhy(t *testing.T) {
	j := &journal{}
	off := false
	in := build(t, []Experiment{{ID: "x", Match: Match{Tools: []string{"*"}}, Fault: Drop, Probability: 1, Enabled: &off}},
		Options{Audit: j, Clock: at(noon), Rand: dice(0)})
	ctx := context.Background()
	if _, ok := in.Inject(ctx, Call{Server: "s", Tool: "t"}); ok {
		t.Fatal("an experiment configured off injected")
	}
	s, err := in.Switch(ctx, "x", true, "ops", "game day")
	if err != nil || !s.Enabled || !s.Active {
		t.Fatalf("enable: %+v %v", s, err)
	}
	f, ok := in.Inject(ctx, Call{Server: "s", Tool: "t", Agent: "a1", Decision: "dec-1"})
	if !ok || f.Kind != Drop {
		t.Fatalf("enabled experiment: %+v %v", f, ok)
	}
	if _, err := in.Switch(ctx, "x", false, "ops", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := in.Inject(ctx, Call{Server: "s", Tool: "t"}); ok {
		t.Fatal("a disabled experiment injected")
	}
	if _, err := in.Switch(ctx, "nope", true, "ops", ""); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown id: %v", err)
	}
	log := j.all()
	for _, want := range []string{
		`chaos.switch {"experiment":"x","enabled":true,"was":false,"by":"ops","reason":"game day"}`,
		`chaos.fault {"experiment":"x","fault":"drop","server":"s","tool":"t","agent":"a1","decision":"dec-1"}`,
		`chaos.switch {"experiment":"x","enabled":false,"was":true,"by":"ops"}`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit lacks %s:\n%s", want, log)
		}
	}
}

func TestFaultsAreCountedForMetrics(t *testing.T) {
	in := build(t, []Experiment{
		{ID: "slow", Match: Match{Tools: []string{"*"}}, Fault: Latency, Probability: 1, LatencyMS: 1},
		{ID: "gpt", Match: Match{Models: []string{"*"}}, Fault: Error, Probability: 1},
	}, Options{Audit: &journal{}, Clock: at(noon), Rand: dice(0)})
	for range 3 {
		in.Inject(context.Background(), Call{Server: "s", Tool: "t"})
	}
	in.Inject(context.Background(), Call{Model: "m"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(in)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"agentgov_chaos_faults_total experiment=slow fault=latency": 3,
		"agentgov_chaos_faults_total experiment=gpt fault=error":    1,
		"agentgov_chaos_experiment_enabled experiment=gpt":          1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
}
