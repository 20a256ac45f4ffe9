package config

// Approvals bounds the approval queue (docs/approvals.md).
type Approvals struct {
	// MaxPendingPerAgent is how many tickets one agent may have waiting for
	// a decision at once; past it, a decision that would open another is a
	// deny. Zero keeps the default, 100.
	MaxPendingPerAgent int `yaml:"max_pending_per_agent"`
}

// maxPendingPerAgent is the most the key accepts: beyond it the bound no
// longer protects the approvers' queue.
const maxPendingPerAgent = 100000

func (a Approvals) validate() error {
	if a.MaxPendingPerAgent < 0 || a.MaxPendingPerAgent > maxPendingPerAgent {
		return &Error{Key: "approvals.max_pending_per_agent", Msg: "want 1 to 100000 (0 keeps the default, 100)"}
	}
	return nil
}
