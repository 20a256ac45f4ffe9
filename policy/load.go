package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// IsTestFile reports whether name is a policy test file (*_test.yaml), which
// loading skips.
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}

func isPolicyFile(name string) bool {
	return (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) && !IsTestFile(name)
}

// Load reads a policy file, or every *.yaml document in a directory (not
// recursing, skipping *_test.yaml), and compiles them into a Set. Every
// problem in every file is reported, each as file:line: message.
func Load(p string) (*Set, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", p, err)
	}
	if !fi.IsDir() {
		return LoadFS(os.DirFS(filepath.Dir(p)), filepath.Base(p), filepath.Dir(p))
	}
	return LoadFS(os.DirFS(p), ".", p)
}

// LoadFS is Load over a file system, such as the embedded built-in pack.
// display prefixes file names in errors.
func LoadFS(fsys fs.FS, name, display string) (*Set, error) {
	docs, errs, err := readFS(fsys, name, display)
	if err != nil {
		return nil, err
	}
	set, err := Compile(docs)
	if err != nil {
		var el ErrorList
		if !errors.As(err, &el) {
			return nil, err
		}
		errs = append(errs, el...)
	}
	if len(errs) > 0 {
		// Conditions of documents with other problems were checked too:
		// one run reports everything, in file and line order.
		slices.SortStableFunc(errs, func(a, b *Error) int {
			if c := strings.Compare(a.File, b.File); c != 0 {
				return c
			}
			return a.Line - b.Line
		})
		return nil, errs
	}
	return set, nil
}

// ReadFS parses (without compiling) the documents at name in fsys.
func ReadFS(fsys fs.FS, name, display string) ([]*Document, error) {
	docs, errs, err := readFS(fsys, name, display)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return docs, nil
}

// readFS parses every document it can, returning the problems found along
// with the documents (those with problems included, as far as they parse).
func readFS(fsys fs.FS, name, display string) ([]*Document, ErrorList, error) {
	files, err := policyFiles(fsys, name)
	if err != nil {
		return nil, nil, fmt.Errorf("load policy %s: %w", display, err)
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("load policy %s: no *.yaml policy documents found", display)
	}
	var docs []*Document
	var errs ErrorList
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, nil, fmt.Errorf("load policy %s: %w", display, err)
		}
		shown := filepath.Join(display, filepath.FromSlash(f))
		if name != "." && f == name {
			shown = filepath.Join(display, filepath.FromSlash(path.Base(f)))
		}
		d, el := parse(shown, data)
		errs = append(errs, el...)
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs, errs, nil
}

func policyFiles(fsys fs.FS, name string) ([]string, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		if IsTestFile(name) {
			return nil, fmt.Errorf("%s is a policy test file, not a policy document", name)
		}
		return []string{name}, nil
	}
	entries, err := fs.ReadDir(fsys, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && isPolicyFile(e.Name()) {
			out = append(out, path.Join(name, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}
