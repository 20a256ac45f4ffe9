package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/agentgov/agentgov/client"
)

// chaosView is a chaos experiment as the reliability page shows it: its
// match, window and state in words.
type chaosView struct {
	client.ChaosExperiment
}

// MatchText says which calls the experiment applies to.
func (e chaosView) MatchText() string {
	var parts []string
	if m := e.Match.Tools; len(m) > 0 {
		parts = append(parts, "tools "+strings.Join(m, ", "))
	}
	if m := e.Match.Servers; len(m) > 0 {
		parts = append(parts, "servers "+strings.Join(m, ", "))
	}
	if m := e.Match.Models; len(m) > 0 {
		parts = append(parts, "models "+strings.Join(m, ", "))
	}
	if len(parts) == 0 {
		return "every call"
	}
	return strings.Join(parts, "; ")
}

// FaultText is the fault with its wait or error.
func (e chaosView) FaultText() string {
	s := e.Fault
	if e.Error != nil && (e.Error.Code != 0 || e.Error.Message != "") {
		s += fmt.Sprintf(" (%d %s)", e.Error.Code, e.Error.Message)
	}
	if e.LatencyMS > 0 {
		s += fmt.Sprintf(", after %d ms", e.LatencyMS)
	}
	return s
}

// WindowText says when the experiment may inject.
func (e chaosView) WindowText() string {
	const layout = "2006-01-02 15:04:05Z"
	switch {
	case e.From != nil && e.Until != nil:
		return "from " + e.From.UTC().Format(layout) + " until " + e.Until.UTC().Format(layout)
	case e.From != nil:
		return "from " + e.From.UTC().Format(layout)
	case e.Until != nil:
		return "until " + e.Until.UTC().Format(layout)
	}
	return "always"
}

// StateText is the switch and whether it injects now, in words.
func (e chaosView) StateText() string {
	switch {
	case e.Enabled && e.Active:
		return "on, injecting"
	case e.Enabled:
		return "on, outside its window"
	}
	return "off"
}

// Percent is the probability as people read it.
func (e chaosView) Percent() string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", e.Probability*100), "0"), ".") + "%"
}

// chaosData puts the server's chaos experiments on the reliability page.
func chaosData(r *http.Request, s *session, data map[string]any) {
	cx, cancel := ctx(r)
	defer cancel()
	list, err := s.api.ChaosExperiments(cx)
	if err != nil {
		data["ChaosError"] = apiError(err)
		return
	}
	views := make([]chaosView, len(list))
	for i, e := range list {
		views[i] = chaosView{e}
	}
	data["Chaos"] = views
}

// chaosForm is a switch asked for on the page: the experiment and where
// to turn it.
type chaosForm struct {
	ID     string
	On     bool
	Reason string
}

func readChaosForm(r *http.Request) (chaosForm, string) {
	f := chaosForm{ID: r.PathValue("id"), Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	switch r.PostFormValue("to") {
	case "on":
		f.On = true
	case "off":
	default:
		return f, "Say whether to switch the experiment on or off."
	}
	return f, ""
}

// chaosTarget is the experiment a form names, as the API shows it now.
func (c *Console) chaosTarget(w http.ResponseWriter, r *http.Request, s *session, id string) (chaosView, bool) {
	cx, cancel := ctx(r)
	defer cancel()
	list, err := s.api.ChaosExperiments(cx)
	if err != nil {
		c.page(w, r, s, http.StatusBadGateway, "error.html", map[string]any{"Title": "Chaos experiment", "Message": apiError(err)})
		return chaosView{}, false
	}
	for _, e := range list {
		if e.ID == id {
			return chaosView{e}, true
		}
	}
	c.page(w, r, s, http.StatusNotFound, "error.html", map[string]any{"Title": "Chaos experiment", "Message": fmt.Sprintf("No chaos experiment %q on this server.", id)})
	return chaosView{}, false
}

// chaosConfirm is the confirmation step: the experiment as it is now and
// the reason to record. Nothing is switched until the person confirms.
func (c *Console) chaosConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	f, msg := readChaosForm(r)
	if msg != "" {
		c.page(w, r, s, http.StatusBadRequest, "error.html", map[string]any{"Title": "Chaos experiment", "Message": msg})
		return
	}
	e, ok := c.chaosTarget(w, r, s, f.ID)
	if !ok {
		return
	}
	c.page(w, r, s, http.StatusOK, "chaos.html", map[string]any{"Title": "Confirm the chaos switch", "Experiment": e, "Form": f})
}

// chaosSwitch switches the experiment through the API, so that the audit
// log names the person's token and reason.
func (c *Console) chaosSwitch(w http.ResponseWriter, r *http.Request, s *session) {
	f, msg := readChaosForm(r)
	if msg != "" {
		c.page(w, r, s, http.StatusBadRequest, "error.html", map[string]any{"Title": "Chaos experiment", "Message": msg})
		return
	}
	if f.Reason == "" {
		e, ok := c.chaosTarget(w, r, s, f.ID)
		if !ok {
			return
		}
		c.page(w, r, s, http.StatusBadRequest, "chaos.html", map[string]any{"Title": "Confirm the chaos switch", "Experiment": e, "Form": f,
			"Error": "Give a reason: it is recorded in the audit log with your name."})
		return
	}
	cx, cancel := ctx(r)
	defer cancel()
	st, err := s.api.SwitchChaos(cx, f.ID, f.On, f.Reason)
	if err != nil {
		c.page(w, r, s, http.StatusConflict, "error.html", map[string]any{"Title": "Chaos experiment", "Message": "Chaos experiment " + f.ID + " not switched: " + apiError(err)})
		return
	}
	http.Redirect(w, r, "/ui/reliability?done="+urlQuery("chaos experiment "+st.ID+" switched "+chaosView{st}.StateText())+"#h-chaos", http.StatusSeeOther)
}
