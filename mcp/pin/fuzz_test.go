package pin

import "testing"

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
