package mcp

import (
	"context"
	"encoding/json"
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

// FuzzParseLock checks that whatever a lock file holds, parsing it either
// fails or gives a lock that writes back to something that parses equal.
func FuzzParseLock(f *testing.F) {
	l := &Lock{}
	l.Pin("fs", []ToolDef{{Name: "read", Description: "Read."}})
	data, _ := l.Marshal()
	f.Add(string(data))
	f.Add("server a sha256:00\n")
	f.Fuzz(func(t *testing.T, in string) {
		l, err := ParseLock("fuzz.lock", []byte(in))
		if err != nil {
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLock("again.lock", out); err != nil {
			t.Fatalf("a parsed lock wrote back unparseable: %v\n%s", err, out)
		}
	})
}

// FuzzCallResult checks that the gateway reads every tools/call result as
// the map-based reading it replaced did.
func FuzzCallResult(f *testing.F) {
	for _, r := range callResults {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !json.Valid([]byte(in)) {
			return
		}
		want, wantErr, ok := resultTextByMaps(json.RawMessage(in))
		res, err := parseCallResult(json.RawMessage(in))
		if (err == nil) != ok {
			t.Fatalf("%s: error %v, the maps say ok=%v", in, err, ok)
		}
		if err == nil && (res.text() != want || res.IsError != wantErr) {
			t.Fatalf("%s: text %q isError %v; want %q %v", in, res.text(), res.IsError, want, wantErr)
		}
	})
}
