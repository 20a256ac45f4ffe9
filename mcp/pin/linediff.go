package pin

import (
	"bytes"
	"encoding/json"
	"strings"
)

// DiffLine is one line of the difference between a pinned tool definition
// and the live one: Op is "-" for a line only the pin has, "+" for one only
// the live definition has, " " for one both share.
type DiffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// maxDiffCells bounds the work of one diff (lines of one side times lines
// of the other); past it every line of each side is shown as changed.
const maxDiffCells = 4_000_000

// LineDiff compares two definitions line by line, each laid out as
// indented canonical JSON, so that a person reads which field, which
// parameter or which sentence changed. A nil side is a tool that is not
// there (not pinned, or no longer offered).
func LineDiff(pinned, live *ToolDef) []DiffLine {
	a, b := defLines(pinned), defLines(live)
	n, m := len(a), len(b)
	if n*m > maxDiffCells {
		out := make([]DiffLine, 0, n+m)
		for _, l := range a {
			out = append(out, DiffLine{"-", l})
		}
		for _, l := range b {
			out = append(out, DiffLine{"+", l})
		}
		return out
	}
	// Longest common subsequence, from the ends, then walked from the start.
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []DiffLine
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			out = append(out, DiffLine{" ", a[i]})
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, DiffLine{"-", a[i]})
			i++
		default:
			out = append(out, DiffLine{"+", b[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, DiffLine{"-", a[i]})
	}
	for ; j < m; j++ {
		out = append(out, DiffLine{"+", b[j]})
	}
	return out
}

func defLines(t *ToolDef) []string {
	if t == nil {
		return nil
	}
	c, err := t.Canonical()
	if err != nil {
		c, _ = json.Marshal(t)
	}
	var buf bytes.Buffer
	if json.Indent(&buf, c, "", "  ") != nil {
		return []string{string(c)}
	}
	return strings.Split(buf.String(), "\n")
}
