//go:build !unix

package wire

import "io"

// pollable is r: outside unix the standard input is read as it is.
func pollable(r io.Reader) io.Reader { return r }
