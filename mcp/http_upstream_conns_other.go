//go:build !unix

package mcp

import "net"

// Outside unix an idle connection's liveness is not checked, so the
// gateway's own transport is not used (see plainTransportFor).
const canCheckIdleConns = false

func idleConnAlive(net.Conn) bool { return false }
