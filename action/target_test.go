package action

import "testing"

func TestPointsTable(t *testing.T) {
	if len(Points) != NumPoints {
		t.Fatalf("NumPoints = %d, Points has %d", NumPoints, len(Points))
	}
	for i, p := range Points {
		if p.Index() != i {
			t.Errorf("%s.Index() = %d, want %d", p, p.Index(), i)
		}
	}
}

// A message point with no target has nothing to decide on: refused, never
// left to a permissive default.
func TestAgentMessageNeedsTarget(t *testing.T) {
	for _, p := range []Point{PreAgentMessage, PostAgentMessage} {
		a := Action{Agent: Agent{ID: "a"}, Point: p, Content: "hello"}
		err := a.Validate()
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != "target.id" {
			t.Fatalf("%s without target: %v, want a field error on target.id", p, err)
		}
		a.Target.ID = "billing"
		if err := a.Validate(); err != nil {
			t.Fatalf("%s with target: %v", p, err)
		}
	}
}

// An approval for a message to one agent does not fit the same message to
// another: the target is part of the digest.
func TestDigestBindsTarget(t *testing.T) {
	a := Action{Agent: Agent{ID: "a"}, Point: PreAgentMessage, Target: Target{ID: "billing"}, Content: "pay 5"}
	b := a
	b.Target.ID = "shipping"
	da, _ := Digest(&a)
	db, _ := Digest(&b)
	if da == db {
		t.Fatal("the digest does not depend on the target")
	}
	c := a
	c.Target.Labels = map[string]string{}
	if dc, _ := Digest(&c); dc != da {
		t.Fatal("empty target labels change the digest")
	}
}
