package mcp

import (
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// pendingRequests are the gateway's own requests in one direction (to the
// upstream, or to the client) that wait for their answers. Each direction
// has its own table, so that an answer is only ever taken from the side
// its request went to. A waiting channel is either sent one answer or
// closed, never both: whoever takes it out of the table owns it.
type pendingRequests struct {
	mu sync.Mutex
	m  map[string]chan *jsonrpc.Response
}

func newPendingRequests() *pendingRequests {
	return &pendingRequests{m: map[string]chan *jsonrpc.Response{}}
}

// add registers a request by its key and returns where its answer comes.
func (p *pendingRequests) add(key string) chan *jsonrpc.Response {
	ch := make(chan *jsonrpc.Response, 1)
	p.mu.Lock()
	p.m[key] = ch
	p.mu.Unlock()
	return ch
}

// remove forgets a request that no longer waits.
func (p *pendingRequests) remove(key string) {
	p.mu.Lock()
	delete(p.m, key)
	p.mu.Unlock()
}

// deliver hands resp to the request it answers; false when it answers
// none.
func (p *pendingRequests) deliver(key string, resp *jsonrpc.Response) bool {
	p.mu.Lock()
	ch := p.m[key]
	delete(p.m, key)
	p.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- resp
	return true
}

// closeAll ends every waiting request without an answer: its side went
// away.
func (p *pendingRequests) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, ch := range p.m {
		close(ch)
		delete(p.m, key)
	}
}

// ticketMemo remembers, within one session, which approval ticket each
// call waits on, when no Tickets store outlives the session.
type ticketMemo struct {
	mu sync.Mutex
	m  map[string]string // call key -> ticket
}

func newTicketMemo() *ticketMemo { return &ticketMemo{m: map[string]string{}} }

func (t *ticketMemo) get(key string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

func (t *ticketMemo) set(key, ticket string) {
	t.mu.Lock()
	t.m[key] = ticket
	t.mu.Unlock()
}

func (t *ticketMemo) forget(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}
