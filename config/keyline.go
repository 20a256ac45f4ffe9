package config

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var keyPart = regexp.MustCompile(`^([^\[\]]+)((?:\[\d+\])*)$`)

var digits = regexp.MustCompile(`\d+`)

// keyLine is the line where a key such as "anomaly.responses[1].action" is
// written in a YAML document, or of the nearest enclosing key that is (a
// key left out, and filled by a default, has no line); 0 when none is.
func keyLine(data []byte, key string) int {
	var root yaml.Node
	if yaml.NewDecoder(bytes.NewReader(data)).Decode(&root) != nil || len(root.Content) == 0 {
		return 0
	}
	n, line := root.Content[0], 0
	for _, part := range strings.Split(key, ".") {
		m := keyPart.FindStringSubmatch(part)
		if m == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == m[1] {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		for _, idx := range digits.FindAllString(m[2], -1) {
			i, _ := strconv.Atoi(idx)
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		}
	}
	return line
}
