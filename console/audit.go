package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

func (c *Console) audit(w http.ResponseWriter, r *http.Request, s *session) {
	cx, cancel := ctx(r)
	defer cancel()
	q := r.URL.Query()
	data := map[string]any{"Title": "Audit log", "Search": q.Get("q")}
	head, err := s.api.AuditEntries(cx, -1, 1)
	if err != nil {
		data["Error"] = apiError(err)
		c.page(w, r, s, http.StatusOK, "audit.html", data)
		return
	}
	size := int64(head.Size)
	// A page is 50 entries ending before ?before=N (default: the end).
	before := size
	if b, err := strconv.ParseInt(q.Get("before"), 10, 64); err == nil && b >= 0 && b < size {
		before = b
	}
	start := max(before-50, 0)
	type row struct {
		Index  uint64
		Kind   string
		Time   string
		Record string
	}
	var rows []row
	if before > start {
		page, err := s.api.AuditEntries(cx, start-1, int(before-start))
		if err != nil {
			data["Error"] = apiError(err)
		}
		search := strings.ToLower(q.Get("q"))
		for i := len(page.Entries) - 1; i >= 0; i-- {
			e := page.Entries[i]
			rec := string(e.Record)
			if search != "" && !strings.Contains(strings.ToLower(e.Kind+" "+rec), search) {
				continue
			}
			if len(rec) > 240 {
				rec = rec[:240] + "…"
			}
			rows = append(rows, row{Index: e.Index, Kind: e.Kind, Time: e.Time.UTC().Format("2006-01-02 15:04:05Z"), Record: rec})
		}
	}
	data["Rows"] = rows
	data["Size"] = size
	if start > 0 {
		data["Older"] = start
	}
	if before < size {
		data["Newer"] = min(before+50, size)
	}
	c.page(w, r, s, http.StatusOK, "audit.html", data)
}

func (c *Console) auditEntry(w http.ResponseWriter, r *http.Request, s *session) {
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		c.page(w, r, s, http.StatusBadRequest, "error.html", map[string]any{"Title": "Audit log", "Message": "An entry is named by its index, a number."})
		return
	}
	cx, cancel := ctx(r)
	defer cancel()
	page, err := s.api.AuditEntries(cx, int64(idx)-1, 1)
	if err != nil || len(page.Entries) == 0 || page.Entries[0].Index != idx {
		msg := "No entry " + strconv.FormatUint(idx, 10) + "."
		if err != nil {
			msg = apiError(err)
		}
		c.page(w, r, s, http.StatusNotFound, "error.html", map[string]any{"Title": "Audit log", "Message": msg})
		return
	}
	e := page.Entries[0]
	// Indented from the bytes as logged: decoded into any, a number past
	// 2^53 would be shown rounded to another.
	var rec bytes.Buffer
	if json.Indent(&rec, e.Record, "", "  ") != nil {
		rec.Reset()
		rec.Write(e.Record)
	}
	// The entry as the page shows it, which the browser checks the proof
	// against: a proof of another entry verifies nothing about this one.
	entryJSON, _ := json.Marshal(e)
	data := map[string]any{"Title": "Audit entry " + strconv.FormatUint(idx, 10), "Entry": e, "Record": rec.String(), "EntryJSON": string(entryJSON)}
	if e.Kind == "decision" {
		// A decision a provenance rule produced says where its values came from.
		var d struct {
			Decision struct {
				Provenance map[string][]string `json:"provenance"`
			} `json:"decision"`
		}
		if json.Unmarshal(e.Record, &d) == nil && len(d.Decision.Provenance) > 0 {
			data["Provenance"] = viewProvenance(d.Decision.Provenance)
		}
	}
	c.page(w, r, s, http.StatusOK, "entry.html", data)
}

// auditProof hands the browser what it needs to check the entry itself:
// the entry, its inclusion proof, the signed checkpoint, and the verifier
// key the server signs with (the page also takes a key the person pastes,
// kept elsewhere, which is the stronger check).
func (c *Console) auditProof(w http.ResponseWriter, r *http.Request, s *session) {
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		http.Error(w, "index: want a number", http.StatusBadRequest)
		return
	}
	cx, cancel := ctx(r)
	defer cancel()
	p, err := s.api.Proof(cx, idx)
	if err == nil && p.Index != idx {
		err = fmt.Errorf("the server gave the proof of entry %d for entry %d", p.Index, idx)
	}
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(map[string]string{"error": apiError(err)})
		return
	}
	var cp struct {
		VerifierKey string `json:"verifier_key"`
	}
	s.api.GetJSON(cx, "/v1/audit/checkpoint", nil, &cp)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"index": p.Index, "tree_size": p.TreeSize, "proof": p.Hashes,
		"checkpoint": p.Checkpoint, "entry": p.Entry, "verifier_key": cp.VerifierKey})
}
