package wire

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzStdioConn feeds arbitrary client bytes to the frame reader: it must
// return messages or errors, never panic or loop, and read every line as
// the SDK's codec does.
func FuzzStdioConn(f *testing.F) {
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}` + "\n")
	f.Add(`[{"jsonrpc":"2.0","method":"x"},{"jsonrpc":"2.0","id":"a","result":{}}]` + "\n")
	f.Add("not json\n\n{}\n[]\n")
	for _, c := range codecCases {
		f.Add(c + "\n")
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, line := range strings.Split(in, "\n") {
			if line = strings.TrimSpace(line); line != "" && line[0] != '[' {
				compareWithSDK(t, []byte(line))
			}
		}
		c := NewStdioConn(strings.NewReader(in), io.Discard, nil, 256)
		for i := 0; i < 1000; i++ {
			_, err := c.Read(context.Background())
			var fe *FrameError
			if err != nil && !errors.As(err, &fe) {
				return
			}
		}
	})
}
