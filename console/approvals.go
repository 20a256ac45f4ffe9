package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentgov/agentgov/approval"
)

// ticketView is a ticket laid out for a person: each argument on its own
// line, masked as the audit log keeps it.
type ticketView struct {
	approval.Ticket
	Args []argView
	// OtherProvenance is the provenance of values outside the arguments
	// (the content), or of arguments the masked record no longer has.
	OtherProvenance []provView
	// Untrusted says some value of the action came from untrusted content.
	Untrusted bool
}

type argView struct {
	Name, Value string
	Provenance  []provView
	Untrusted   bool
}

func viewTicket(t approval.Ticket) ticketView {
	v := ticketView{Ticket: t}
	keys := make([]string, 0, len(t.Action.Args))
	for k := range t.Action.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rest := viewProvenance(t.Provenance)
	for _, p := range rest {
		v.Untrusted = v.Untrusted || p.Untrusted
	}
	for _, k := range keys {
		a := argView{Name: k, Value: pretty(t.Action.Args[k])}
		a.Provenance, rest = provenanceOf(k, rest)
		for _, p := range a.Provenance {
			a.Untrusted = a.Untrusted || p.Untrusted
		}
		v.Args = append(v.Args, a)
	}
	v.OtherProvenance = rest
	return v
}

func (c *Console) pendingTickets(r *http.Request, s *session) ([]ticketView, error) {
	cx, cancel := ctx(r)
	defer cancel()
	ts, err := exactTickets(cx, s)
	if err != nil {
		return nil, err
	}
	// Oldest first: the one that expires soonest is on top.
	slices.SortFunc(ts, func(a, b approval.Ticket) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	out := make([]ticketView, len(ts))
	for i, t := range ts {
		out[i] = viewTicket(t)
	}
	return out, nil
}

// exactTickets lists the pending tickets the person may decide with every
// number as the API wrote it: decoded as float64, an integer past 2^53 (an
// account number, say) would be shown to the approver as another one.
func exactTickets(cx context.Context, s *session) ([]approval.Ticket, error) {
	var out struct {
		Approvals []json.RawMessage `json:"approvals"`
	}
	if err := s.api.GetJSON(cx, "/v1/approvals", url.Values{"status": {string(approval.Pending)}}, &out); err != nil {
		return nil, err
	}
	ts := make([]approval.Ticket, len(out.Approvals))
	for i, raw := range out.Approvals {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&ts[i]); err != nil {
			return nil, fmt.Errorf("decode approval ticket: %w", err)
		}
	}
	return ts, nil
}

func (c *Console) approvals(w http.ResponseWriter, r *http.Request, s *session) {
	ts, err := c.pendingTickets(r, s)
	data := map[string]any{"Title": "Approvals", "Tickets": ts, "Flash": r.URL.Query().Get("done")}
	if err != nil {
		data["Error"] = apiError(err)
	}
	c.page(w, r, s, http.StatusOK, "approvals.html", data)
}

// approvalsList is the queue alone, which the page fetches when the event
// stream says it changed.
func (c *Console) approvalsList(w http.ResponseWriter, r *http.Request, s *session) {
	ts, err := c.pendingTickets(r, s)
	data := map[string]any{"Tickets": ts}
	if err != nil {
		data["Error"] = apiError(err)
	}
	q := r.URL.Query()
	q.Set("part", "1")
	r.URL.RawQuery = q.Encode()
	c.page(w, r, s, http.StatusOK, "approvals.html", data)
}

func (c *Console) decideTicket(w http.ResponseWriter, r *http.Request, s *session) {
	id, verb := r.PathValue("id"), r.PathValue("verb")
	note := strings.TrimSpace(r.PostFormValue("note"))
	cx, cancel := ctx(r)
	defer cancel()
	var err error
	switch verb {
	case "approve":
		_, err = s.api.Approve(cx, id, note)
	case "deny":
		_, err = s.api.DenyApproval(cx, id, note)
	default:
		http.NotFound(w, r)
		return
	}
	past := map[string]string{"approve": "approved", "deny": "denied"}[verb]
	if err != nil {
		ts, _ := c.pendingTickets(r, s)
		c.page(w, r, s, http.StatusConflict, "approvals.html", map[string]any{"Title": "Approvals", "Tickets": ts,
			"Error": fmt.Sprintf("Ticket %s was not %s: %s", id, past, apiError(err))})
		return
	}
	http.Redirect(w, r, "/ui/approvals?done="+urlQuery(id+" "+past), http.StatusSeeOther)
}

// approvalEvents tells the page when the queue changed (a ticket came,
// was decided or expired), as server-sent events.
func (c *Console) approvalEvents(w http.ResponseWriter, r *http.Request, s *session) {
	// The first event is always sent: it is the state the page was drawn
	// from, which the page skips; each later one is news.
	last, first := "", true
	c.stream(w, r, s, func() (string, string, bool) {
		cx, cancel := ctx(r)
		defer cancel()
		ts, err := s.api.Approvals(cx, approval.Pending)
		if err != nil {
			return "", "", false
		}
		ids := make([]string, len(ts))
		for i, t := range ts {
			ids[i] = t.ID
		}
		slices.Sort(ids)
		now := strings.Join(ids, ",")
		if now == last && !first {
			return "", "", false
		}
		last, first = now, false
		b, _ := json.Marshal(map[string]any{"pending": len(ids)})
		return "queue", string(b), true
	})
}

// stream writes server-sent events: poll is asked every Poll interval and
// its event sent when it has one; a comment every 15s keeps proxies from
// closing an idle stream. It ends when the browser goes away or the
// session ends.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, s *session, poll func() (event, data string, ok bool)) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc.SetWriteDeadline(time.Time{})
	tick := time.NewTicker(c.opt.Poll)
	defer tick.Stop()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	send := func() bool {
		// The stream speaks for the session: once it ends (signed out,
		// expired), nothing more is sent.
		if !c.sessions.alive(s) {
			return false
		}
		if ev, data, ok := poll(); ok {
			fmt.Fprintf(w, "event: %s\n", ev)
			// A lone CR ends a line too, for an EventSource: one in an
			// agent's string must not end the event and start another.
			data = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
			for _, line := range strings.Split(data, "\n") {
				fmt.Fprintf(w, "data: %s\n", line)
			}
			fmt.Fprint(w, "\n")
		}
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if !c.sessions.alive(s) {
				return
			}
			fmt.Fprint(w, ": keep-alive\n\n")
			if rc.Flush() != nil {
				return
			}
		case <-tick.C:
			if !send() {
				return
			}
		}
	}
}

// pretty lays a JSON value out for reading: strings as they are, anything
// else as indented JSON.
func pretty(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
