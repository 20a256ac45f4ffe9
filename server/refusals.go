package server

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Refused credentials are audited, but a client spraying bad tokens must
// not be able to grow the audit log (and stall its writer) at the rate it
// can send requests. Within each minute the first refusals from a source
// are audited, and the next ones from that source only counted; the count
// is carried by the source's next audited refusal, so the log still says
// how many there were. A global cap bounds what many sources can add.
const (
	refusalWindow       = time.Minute
	refusalsPerSource   = 20
	refusalsPerWindow   = 200
	refusalSourcesLimit = refusalsPerWindow // a source is tracked only once audited
)

// refusalLimiter decides which credential refusals are audited.
type refusalLimiter struct {
	mu      sync.Mutex
	start   time.Time
	audited map[string]int // refusals audited this window, by source
	total   int
	// suppressed counts the refusals counted but not audited, by source,
	// until one of that source is audited again; other is the count of
	// sources not tracked.
	suppressed map[string]int
	other      int
}

// admit says whether a refusal from source is audited now and, if so, how
// many from the same source went unaudited before it.
func (l *refusalLimiter) admit(now time.Time, source string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.audited == nil || now.Sub(l.start) >= refusalWindow || now.Before(l.start) {
		l.start, l.audited, l.total = now, map[string]int{}, 0
	}
	if l.suppressed == nil {
		l.suppressed = map[string]int{}
	}
	if l.audited[source] >= refusalsPerSource || l.total >= refusalsPerWindow {
		if _, tracked := l.suppressed[source]; tracked || len(l.suppressed) < refusalSourcesLimit {
			l.suppressed[source]++
		} else {
			l.other++
		}
		return false, 0
	}
	l.audited[source]++
	l.total++
	n := l.suppressed[source]
	delete(l.suppressed, source)
	// Refusals of sources no longer tracked are carried by whichever
	// refusal is audited next.
	n += l.other
	l.other = 0
	return true, n
}

// sourceOf is the address a request came from, without its port.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
