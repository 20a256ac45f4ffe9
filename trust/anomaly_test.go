package trust_test

import (
	"strings"
	"testing"

	"github.com/agentgov/agentgov/trust"
)

// Anomalies lower a score by the weight of their kind; a weight of 0
// switches a kind off.
func TestAnomaliesLowerTheScoreByKind(t *testing.T) {
	zero := 0
	f := newKeeper(t, trust.Config{Events: trust.Weights{Anomaly: trust.AnomalyWeights{Entropy: &zero}}}, trust.Rings{})
	for _, kind := range []string{"rate_z", "new_tool", "entropy"} {
		f.k.Observe(trust.Signal{Agent: "a1", Kind: trust.KindAnomaly, Anomaly: kind, Decision: "dec_1", Detail: "anomaly " + kind})
	}
	f.flush(t)
	if got := f.k.View("a1").Score(); got != 500-10-2 {
		t.Fatalf("score %d, want 488 (rate_z -10, new_tool -2, entropy off)", got)
	}
	if batch := f.j.last("trust"); !strings.Contains(batch, `"kind":"anomaly"`) || !strings.Contains(batch, `"detail":"anomaly rate_z"`) || strings.Contains(batch, "anomaly entropy") {
		t.Fatalf("batch %s", batch)
	}
}

func TestAnomalyWeightsMustLower(t *testing.T) {
	up := 5
	c := trust.Config{Events: trust.Weights{Anomaly: trust.AnomalyWeights{RateZ: &up}}}
	c.Fill()
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "events.anomaly.rate_z:") {
		t.Fatalf("err %v", err)
	}
}
