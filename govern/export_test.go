package govern

import "time"

// SetChangeTimeout bounds every Change of e by d instead of auditTimeout.
func SetChangeTimeout(e *Engine, d time.Duration) { e.changeTimeout = d }
