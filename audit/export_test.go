package audit

// QueueLen is how many appends wait for the writer; tests use it to know
// that a batch has formed.
func (l *Log) QueueLen() int { return len(l.queue) }
