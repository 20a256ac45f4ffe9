package console

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/agentgov/agentgov/client"
)

// trustView is an agent's trust and ring as the agents page shows them.
type trustView struct {
	// Configured is false when the server keeps no trust scores.
	Configured bool
	Score      int
	Tier       string
	// Ring is the ring the agent holds now, RingNote how it got it.
	HasRing  bool
	Ring     int
	RingNote string
	Error    string
}

type trustReport struct {
	Score int    `json:"score"`
	Tier  string `json:"tier"`
	Rings *struct {
		Base      int  `json:"base"`
		Ring      int  `json:"ring"`
		Demoted   bool `json:"demoted"`
		Elevation *struct {
			Ring  int       `json:"ring"`
			Until time.Time `json:"until"`
		} `json:"elevation"`
	} `json:"rings"`
}

type registered struct {
	ID        string     `json:"id"`
	Ring      int        `json:"ring"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// registry returns the agents of the registry by id, and whether the
// server has one.
func registry(cx context.Context, api *client.Client) (map[string]registered, bool) {
	var out struct {
		Agents []registered `json:"agents"`
	}
	if err := api.GetJSON(cx, "/v1/agents", nil, &out); err != nil {
		return nil, false
	}
	m := make(map[string]registered, len(out.Agents))
	for _, a := range out.Agents {
		m[a.ID] = a
	}
	return m, true
}

// trustOf asks the API for one agent's trust report and lays it out with
// its registered ring.
func trustOf(cx context.Context, api *client.Client, id string, reg map[string]registered) trustView {
	var rep trustReport
	v := trustView{Configured: true}
	if err := api.GetJSON(cx, "/v1/agents/"+url.PathEscape(id)+"/trust", url.Values{"limit": {"1"}}, &rep); err != nil {
		if client.IsCode(err, "not_found") {
			v.Configured = false
		} else {
			v.Error = apiError(err)
		}
	} else {
		v.Score, v.Tier = rep.Score, rep.Tier
	}
	switch a, isReg := reg[id]; {
	case rep.Rings != nil:
		v.HasRing, v.Ring = true, rep.Rings.Ring
		switch {
		case rep.Rings.Elevation != nil:
			v.RingNote = fmt.Sprintf("elevated from ring %d until %s", rep.Rings.Base, rep.Rings.Elevation.Until.UTC().Format("2006-01-02 15:04Z"))
		case rep.Rings.Demoted:
			v.RingNote = fmt.Sprintf("demoted from ring %d for its tier", rep.Rings.Base)
		case isReg:
			v.RingNote = "as registered"
		default:
			v.RingNote = "by configuration"
		}
	case isReg:
		v.HasRing, v.Ring, v.RingNote = true, a.Ring, "as registered; rings are not configured, so it grants nothing"
	}
	return v
}
