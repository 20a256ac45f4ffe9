package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Tickets remembers which approval ticket a call waits on, by session and
// call (the tool and the digest of its arguments), so that the very same
// call retried in the session is decided under its ticket and goes through
// once it is approved. What it remembers grants nothing by itself: the
// engine lets a call through only under a ticket approved for exactly that
// action, once.
//
// Without one the gateway remembers in memory, for the life of a session.
// A TicketFile keeps them across restarts of a stdio gateway whose session
// id stays the same (`agentgov mcp run`), so that an approval survives the
// client's restart.
type Tickets interface {
	Ticket(session, call string) string
	Remember(session, call, ticket string) error
	Forget(session, call string) error
}

// maxTicketFile bounds the calls a TicketFile remembers; the oldest go
// first. Tickets expire within hours, so only the last few matter.
const maxTicketFile = 256

// TicketFile is Tickets kept in a JSON file, written whole (mode 0600) on
// every change.
type TicketFile struct {
	mu      sync.Mutex
	path    string
	entries []ticketEntry
}

// ticketFile is the file's form.
type ticketFile struct {
	Tickets []ticketEntry `json:"tickets"`
}

type ticketEntry struct {
	Session string `json:"session"`
	Call    string `json:"call"`
	Ticket  string `json:"ticket"`
}

var _ Tickets = (*TicketFile)(nil)

// OpenTicketFile reads the file at path; a missing file is empty and is
// created on the first change.
func OpenTicketFile(path string) (*TicketFile, error) {
	t := &TicketFile{path: path}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("approval tickets: %w", err)
	}
	var f ticketFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("approval tickets %s: %w (delete the file to start afresh)", path, err)
	}
	t.entries = f.Tickets
	return t, nil
}

// Ticket returns the ticket the call waits on, or "".
func (t *TicketFile) Ticket(session, call string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := t.find(session, call); i >= 0 {
		return t.entries[i].Ticket
	}
	return ""
}

// Remember notes that the call waits on ticket.
func (t *TicketFile) Remember(session, call, ticket string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := t.find(session, call); i >= 0 {
		if t.entries[i].Ticket == ticket {
			return nil
		}
		t.entries = slices.Delete(t.entries, i, i+1)
	}
	t.entries = append(t.entries, ticketEntry{Session: session, Call: call, Ticket: ticket})
	if n := len(t.entries) - maxTicketFile; n > 0 {
		t.entries = slices.Delete(t.entries, 0, n)
	}
	return t.write()
}

// Forget drops what the call waited on: it went through, or was refused.
func (t *TicketFile) Forget(session, call string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.find(session, call)
	if i < 0 {
		return nil
	}
	t.entries = slices.Delete(t.entries, i, i+1)
	return t.write()
}

func (t *TicketFile) find(session, call string) int {
	return slices.IndexFunc(t.entries, func(e ticketEntry) bool { return e.Session == session && e.Call == call })
}

func (t *TicketFile) write() error {
	data, err := json.MarshalIndent(ticketFile{Tickets: t.entries}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(t.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("approval tickets: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tickets-*")
	if err != nil {
		return fmt.Errorf("approval tickets: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("approval tickets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("approval tickets: %w", err)
	}
	if err := os.Rename(tmp.Name(), t.path); err != nil {
		return fmt.Errorf("approval tickets: %w", err)
	}
	return nil
}
