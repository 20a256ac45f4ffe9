package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentgov/agentgov/client"
)

// mcpServer is one upstream as GET /v1/mcp/servers answers.
type mcpServer struct {
	Name        string    `json:"name"`
	Transport   string    `json:"transport"`
	Upstream    string    `json:"upstream"`
	Lock        string    `json:"lock"`
	Signed      bool      `json:"signed"`
	ListedAt    time.Time `json:"listed_at"`
	Drift       bool      `json:"drift"`
	Quarantined int       `json:"quarantined"`
	Tools       []mcpTool `json:"tools"`
}

type mcpTool struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	PinnedDigest  string `json:"pinned_digest"`
	CurrentDigest string `json:"current_digest"`
	Quarantine    string `json:"quarantine"`
	Changes       []struct {
		Level string `json:"level"`
		What  string `json:"what"`
	} `json:"changes"`
	Diff []diffLine `json:"diff"`
}

type diffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// Drifted says a person may re-pin the tool: what is offered is not what
// is pinned.
func (t mcpTool) Drifted() bool {
	return t.State == "drifted" || t.State == "new" || t.State == "removed"
}

// Lines is the diff as a person reads it: each line marked by its sign
// (not by colour alone), long unchanged runs folded.
func (t mcpTool) Lines() []diffView { return foldDiff(t.Diff, 3) }

type diffView struct {
	Class, Sign, Text string
}

// foldDiff keeps ctx unchanged lines around each change and folds the rest
// into one line saying how many.
func foldDiff(lines []diffLine, ctx int) []diffView {
	near := make([]bool, len(lines))
	for i, l := range lines {
		if l.Op != " " {
			for j := max(i-ctx, 0); j <= min(i+ctx, len(lines)-1); j++ {
				near[j] = true
			}
		}
	}
	var out []diffView
	for i := 0; i < len(lines); {
		if near[i] {
			l := lines[i]
			v := diffView{Class: "same", Sign: " ", Text: l.Text}
			switch l.Op {
			case "+":
				v.Class, v.Sign = "added", "+"
			case "-":
				v.Class, v.Sign = "removed", "-"
			}
			out = append(out, v)
			i++
			continue
		}
		j := i
		for j < len(lines) && !near[j] {
			j++
		}
		out = append(out, diffView{Class: "folded", Sign: "…", Text: fmt.Sprintf("%d unchanged lines", j-i)})
		i = j
	}
	return out
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func (c *Console) mcpServers(r *http.Request, s *session) ([]mcpServer, bool, string) {
	cx, cancel := ctx(r)
	defer cancel()
	var out struct {
		Servers []mcpServer `json:"servers"`
	}
	if err := s.api.GetJSON(cx, "/v1/mcp/servers", nil, &out); err != nil {
		if client.IsCode(err, "not_found") {
			return nil, false, ""
		}
		return nil, true, apiError(err)
	}
	return out.Servers, true, ""
}

func (c *Console) mcp(w http.ResponseWriter, r *http.Request, s *session) {
	servers, on, errMsg := c.mcpServers(r, s)
	c.page(w, r, s, http.StatusOK, "mcp.html", map[string]any{"Title": "MCP servers", "Servers": servers, "Enabled": on,
		"Error": errMsg, "Flash": r.URL.Query().Get("done")})
}

// repinTarget finds the tool a re-pin form names, as the API shows it now.
func (c *Console) repinTarget(w http.ResponseWriter, r *http.Request, s *session) (mcpServer, mcpTool, bool) {
	name, tool := r.PostFormValue("server"), r.PostFormValue("tool")
	servers, _, errMsg := c.mcpServers(r, s)
	if errMsg != "" {
		c.page(w, r, s, http.StatusBadGateway, "error.html", map[string]any{"Title": "Re-pin", "Message": errMsg})
		return mcpServer{}, mcpTool{}, false
	}
	for _, srv := range servers {
		if srv.Name != name {
			continue
		}
		for _, t := range srv.Tools {
			if t.Name == tool {
				return srv, t, true
			}
		}
	}
	c.page(w, r, s, http.StatusNotFound, "error.html", map[string]any{"Title": "Re-pin", "Message": fmt.Sprintf("No tool %q of MCP server %q.", tool, name)})
	return mcpServer{}, mcpTool{}, false
}

// repinConfirm is the confirmation step: the difference once more, as the
// upstream offers the tool now, and the reason to record. Nothing changes
// until the person confirms.
func (c *Console) repinConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	srv, t, ok := c.repinTarget(w, r, s)
	if !ok {
		return
	}
	if !t.Drifted() {
		c.page(w, r, s, http.StatusConflict, "error.html", map[string]any{"Title": "Re-pin", "Message": fmt.Sprintf("Tool %s/%s is %s: there is nothing to re-pin.", srv.Name, t.Name, t.State)})
		return
	}
	data := map[string]any{"Title": "Confirm the re-pin", "Server": srv, "Tool": t, "Reason": strings.TrimSpace(r.PostFormValue("reason"))}
	if r.PostFormValue("digest") != t.CurrentDigest {
		data["Moved"] = true
	}
	c.page(w, r, s, http.StatusOK, "repin.html", data)
}

func (c *Console) repin(w http.ResponseWriter, r *http.Request, s *session) {
	name, tool := r.PostFormValue("server"), r.PostFormValue("tool")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		srv, t, ok := c.repinTarget(w, r, s)
		if !ok {
			return
		}
		c.page(w, r, s, http.StatusBadRequest, "repin.html", map[string]any{"Title": "Confirm the re-pin", "Server": srv, "Tool": t,
			"Error": "Give a reason: it is recorded in the audit log with your name."})
		return
	}
	cx, cancel := ctx(r)
	defer cancel()
	var out struct {
		OldDigest string `json:"old_digest"`
		NewDigest string `json:"new_digest"`
	}
	path := "/v1/mcp/servers/" + url.PathEscape(name) + "/tools/" + url.PathEscape(tool) + "/repin"
	if err := s.api.PostJSON(cx, path, map[string]string{"reason": reason, "digest": r.PostFormValue("digest")}, &out); err != nil {
		c.page(w, r, s, http.StatusConflict, "error.html", map[string]any{"Title": "Re-pin", "Message": fmt.Sprintf("Tool %s/%s was not re-pinned: %s", name, tool, apiError(err))})
		return
	}
	msg := fmt.Sprintf("%s/%s re-pinned (%s → %s); it is callable from the next call", name, tool, orNone(short(out.OldDigest)), orNone(short(out.NewDigest)))
	http.Redirect(w, r, "/ui/mcp?done="+urlQuery(msg), http.StatusSeeOther)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
