package main

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// stateDir is the per-user directory where `mcp run` keeps a gateway's
// state when no --data is given: a desktop client launches it from a
// working directory of its own choosing (often /), so the default must
// not depend on it. It is where each system keeps an application's
// per-user state, not its configuration or its cache (a cache may be
// wiped, and this holds an audit log):
//
//   - Linux and the BSDs: $XDG_STATE_HOME/agentgov, by default
//     ~/.local/state/agentgov;
//   - macOS: ~/Library/Application Support/agentgov;
//   - Windows: %LocalAppData%\agentgov.
func stateDir() (string, error) {
	switch runtime.GOOS {
	case "darwin", "ios":
		dir, err := os.UserConfigDir() // ~/Library/Application Support
		if err != nil {
			return "", err
		}
		return filepath.Join(dir, "agentgov"), nil
	case "windows":
		dir, err := os.UserCacheDir() // %LocalAppData%
		if err != nil {
			return "", err
		}
		return filepath.Join(dir, "agentgov"), nil
	}
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "agentgov"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("no per-user state directory: neither $XDG_STATE_HOME nor $HOME is set; pass --data")
	}
	return filepath.Join(home, ".local", "state", "agentgov"), nil
}

// gatewayDir is the default directory of the `mcp run` gateway of one
// server: its data directory (audit log, approvals, kill switches), its
// pins and the tickets its calls wait on. One per server, since a data
// directory serves one process and a desktop client runs one gateway per
// server.
func gatewayDir(server string) (string, error) {
	dir, err := stateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "mcp", server), nil
}
