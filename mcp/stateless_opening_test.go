package mcp

import (
	"net/http/httptest"
	"testing"
)

// A backing session whose opening wrote nothing (its client went away)
// still gives the stateless request an answer, never a panic.
func TestAnOpeningThatWroteNothingIsAnswered(t *testing.T) {
	e := refusedOpening(newRecorder())
	if e.err == nil || e.body != nil {
		t.Fatalf("refusal of an empty opening: %+v", e)
	}
	w := httptest.NewRecorder()
	writeRPCError(w, mustID(float64(1)), 0, e.err)
	if w.Code != 503 {
		t.Fatalf("answered %d, want 503", w.Code)
	}
	rec := newRecorder()
	rec.WriteHeader(403)
	rec.body.WriteString(`{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"killed"}}`)
	if e := refusedOpening(rec); e.err != nil || e.status != 403 || len(e.body) == 0 {
		t.Fatalf("a written refusal is not passed on as written: %+v", e)
	}
}
