package console

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentgov/agentgov/killswitch"
)

// agentView is an agent as the recent audit log shows it.
type agentView struct {
	ID        string
	LastSeen  time.Time
	Decisions int
	Denied    int
	Sessions  []string
	Killed    bool
	Trust     trustView
	Anomaly   anomalyView
	// Registered says the agent is in the registry; Revoked that it was
	// revoked there.
	Registered, Revoked bool
}

// maxTrustLookups bounds the trust reports one page view asks for.
const maxTrustLookups = 200

func (c *Console) agents(w http.ResponseWriter, r *http.Request, s *session) {
	cx, cancel := ctx(r)
	defer cancel()
	data := map[string]any{"Title": "Agents and sessions", "Flash": r.URL.Query().Get("done")}
	rows, _, err := recent(cx, s.api, filter{}, 2000)
	if err != nil {
		data["Error"] = apiError(err)
	}
	kills, kerr := s.api.Kills(cx)
	if kerr != nil {
		data["Error"] = apiError(kerr)
	}
	byID := map[string]*agentView{}
	for _, d := range rows {
		if d.Agent == "" {
			continue
		}
		a := byID[d.Agent]
		if a == nil {
			a = &agentView{ID: d.Agent, LastSeen: d.Time}
			byID[d.Agent] = a
		}
		a.Decisions++
		if d.Effect == "deny" {
			a.Denied++
		}
		if d.Session != "" && !slices.Contains(a.Sessions, d.Session) && len(a.Sessions) < 10 {
			a.Sessions = append(a.Sessions, d.Session)
		}
	}
	for _, k := range kills {
		if k.Scope == killswitch.Agent {
			if a := byID[k.Target]; a != nil {
				a.Killed = true
			}
		}
	}
	// Registered agents that made no recent decision are shown too.
	reg, hasRegistry := registry(cx, s.api)
	for id := range reg {
		if byID[id] == nil {
			byID[id] = &agentView{ID: id}
		}
	}
	agents := make([]*agentView, 0, len(byID))
	for _, a := range byID {
		agents = append(agents, a)
	}
	slices.SortFunc(agents, func(a, b *agentView) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	trustOn, anomalyOn := true, true
	for i, a := range agents {
		if r, ok := reg[a.ID]; ok {
			a.Registered, a.Revoked = true, r.RevokedAt != nil
		}
		if i < maxTrustLookups {
			a.Trust = trustOf(cx, s.api, a.ID, reg)
			trustOn = trustOn && a.Trust.Configured
			a.Anomaly = anomalyOf(cx, s.api, a.ID)
			anomalyOn = anomalyOn && !a.Anomaly.Off
		}
	}
	data["TrustOn"] = trustOn
	data["AnomalyOn"] = anomalyOn
	data["Registry"] = hasRegistry
	data["Agents"] = agents
	data["Kills"] = kills
	c.page(w, r, s, http.StatusOK, "agents.html", data)
}

// killConfirm is the confirmation step: nothing is engaged until the
// person confirms on the page it shows.
func (c *Console) killConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	k := killForm(r)
	if msg := k.problem(); msg != "" {
		c.page(w, r, s, http.StatusBadRequest, "error.html", map[string]any{"Title": "Kill switch", "Message": msg})
		return
	}
	c.page(w, r, s, http.StatusOK, "kill.html", map[string]any{"Title": "Confirm the kill switch", "Kill": k})
}

func (c *Console) kill(w http.ResponseWriter, r *http.Request, s *session) {
	k := killForm(r)
	if msg := k.problem(); msg != "" {
		c.page(w, r, s, http.StatusBadRequest, "error.html", map[string]any{"Title": "Kill switch", "Message": msg})
		return
	}
	cx, cancel := ctx(r)
	defer cancel()
	sw, err := s.api.Kill(cx, killswitch.Scope(k.Scope), k.Target, k.Reason)
	if err != nil {
		c.page(w, r, s, http.StatusConflict, "error.html", map[string]any{"Title": "Kill switch", "Message": "Not engaged: " + apiError(err)})
		return
	}
	http.Redirect(w, r, "/ui/agents?done="+urlQuery("kill switch "+sw.ID+" engaged"), http.StatusSeeOther)
}

func (c *Console) release(w http.ResponseWriter, r *http.Request, s *session) {
	cx, cancel := ctx(r)
	defer cancel()
	id := r.PathValue("id")
	if err := s.api.ReleaseKill(cx, id); err != nil {
		c.page(w, r, s, http.StatusConflict, "error.html", map[string]any{"Title": "Kill switch", "Message": "Not released: " + apiError(err)})
		return
	}
	http.Redirect(w, r, "/ui/agents?done="+urlQuery("kill switch "+id+" released"), http.StatusSeeOther)
}

func (c *Console) moveSession(w http.ResponseWriter, r *http.Request, s *session) {
	id := strings.TrimSpace(r.PostFormValue("session"))
	cx, cancel := ctx(r)
	defer cancel()
	var err error
	switch r.PathValue("verb") {
	case "pause":
		_, err = s.api.PauseSession(cx, id)
	case "resume":
		_, err = s.api.ResumeSession(cx, id)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		c.page(w, r, s, http.StatusConflict, "error.html", map[string]any{"Title": "Session", "Message": "Session " + id + " not changed: " + apiError(err)})
		return
	}
	http.Redirect(w, r, "/ui/agents?done="+urlQuery("session "+id+" "+r.PathValue("verb")+"d"), http.StatusSeeOther)
}

type killRequest struct{ Scope, Target, Reason string }

func killForm(r *http.Request) killRequest {
	return killRequest{Scope: r.PostFormValue("scope"), Target: strings.TrimSpace(r.PostFormValue("target")), Reason: strings.TrimSpace(r.PostFormValue("reason"))}
}

func (k killRequest) problem() string {
	switch {
	case !slices.Contains([]string{"agent", "principal", "system"}, k.Scope):
		return "Choose what to stop: an agent, a principal or the whole system (pause a session below)."
	case k.Scope != "system" && k.Target == "":
		return "Name the " + k.Scope + " to stop."
	case k.Reason == "":
		return "Give a reason: it is recorded in the audit log and shown to whoever is stopped."
	}
	return ""
}
