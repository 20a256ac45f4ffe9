package audit

import "time"

// QueueLen is how many appends wait for the writer; tests use it to know
// that a batch has formed.
func (l *Log) QueueLen() int { return len(l.queue) }

// LingerFor is lingerFor for a log with the given CommitDelay.
func LingerFor(commitDelay, spread time.Duration) time.Duration {
	l := &Log{opts: Options{CommitDelay: commitDelay}}
	return l.lingerFor(spread)
}
