// Package clients holds no Go code of its own: its test runs the Python
// client (clients/python) and the TypeScript client (clients/typescript)
// against a real agentgov server, so that `./test` covers them.
package clients
