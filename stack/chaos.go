package stack

import (
	"context"

	"github.com/agentgov/agentgov/chaos"
	"github.com/agentgov/agentgov/llmproxy"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/server"
)

// openChaos builds the chaos experiments the configuration declares, if it
// declares any: their faults are audited and counted at /metrics.
func (s *Stack) openChaos() {
	if len(s.Config.Chaos) == 0 {
		return
	}
	s.Chaos = chaos.New(s.Config.Chaos, chaos.Options{Audit: s.Audit, Clock: s.clock, Logger: s.log})
	s.Metrics.Registry().MustRegister(s.Chaos)
}

// The entry points take the experiments as interfaces, which must stay
// nil, not hold a nil pointer, when there are none: then they pay a nil
// check and nothing more.

func (s *Stack) mcpChaos() mcp.FaultInjector {
	if s.Chaos == nil {
		return nil
	}
	return s.Chaos
}

func (s *Stack) proxyChaos() llmproxy.FaultInjector {
	if s.Chaos == nil {
		return nil
	}
	return proxyChaos{s.Chaos}
}

// proxyChaos gives the model proxy, which knows nothing of package chaos,
// the experiments' faults.
type proxyChaos struct{ in *chaos.Injector }

func (p proxyChaos) Inject(ctx context.Context, c llmproxy.ChaosCall) (llmproxy.ChaosFault, bool) {
	f, ok := p.in.Inject(ctx, chaos.Call{Model: c.Model, Agent: c.Agent, Session: c.Session, Decision: c.Decision})
	return llmproxy.ChaosFault{Experiment: f.Experiment, Kind: f.Kind, Wait: f.Wait, Message: f.Message, Code: f.Code}, ok
}

func (s *Stack) serverChaos() server.Chaos {
	if s.Chaos == nil {
		return nil
	}
	return s.Chaos
}
