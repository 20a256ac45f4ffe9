package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// The repository documents itself: every link in the README and docs/
// points at a file of the repository that exists (and, with an anchor, at
// a heading of it); none leads outside.
func TestDocsLinkOnlyInsideTheRepository(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(data), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				t.Errorf("%s: %s leads outside the repository", filepath.Base(f), link)
				continue
			}
			path, anchor, _ := strings.Cut(link, "#")
			target := f
			if path != "" {
				target = filepath.Join(filepath.Dir(f), path)
			}
			abs, _ := filepath.Abs(target)
			root, _ := filepath.Abs("../..")
			if !strings.HasPrefix(abs, root+string(filepath.Separator)) {
				t.Errorf("%s: %s leads outside the repository", filepath.Base(f), link)
				continue
			}
			body, err := os.ReadFile(target)
			if err != nil {
				if fi, serr := os.Stat(target); serr == nil && fi.IsDir() {
					continue
				}
				t.Errorf("%s: %s: %v", filepath.Base(f), link, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !hasAnchor(string(body), anchor) {
				t.Errorf("%s: %s: no heading makes the anchor #%s", filepath.Base(f), link, anchor)
			}
		}
	}
}

// hasAnchor reports whether a Markdown heading of doc makes anchor, as
// GitHub makes them: lower case, spaces to '-', punctuation dropped.
func hasAnchor(doc, anchor string) bool {
	for _, line := range strings.Split(doc, "\n") {
		h := strings.TrimLeft(line, "#")
		if h == line || !strings.HasPrefix(h, " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(h)) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		if b.String() == anchor {
			return true
		}
	}
	return false
}
