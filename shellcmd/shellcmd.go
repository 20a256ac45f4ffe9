// Package shellcmd reads a shell command line the way a POSIX shell (and
// bash) splits it into commands and words, so that policies see `"rm" -rf /`,
// `r\m -rf /`, `sudo rm -rf /` and `bash -c 'rm -rf /'` as the rm command
// they are. It does not run anything: expansions whose value is only known at
// run time ($VAR, $(...), `...`) stay in the word as written, and the
// commands inside a substitution are read as commands of their own.
package shellcmd

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds how deeply command lines may nest inside each other
// ($(...) in sh -c '...' in eval ...). Deeper input is an error, which makes
// a deny rule fail closed.
const maxDepth = 16

// maxBraceWords bounds what one word's brace expansion ({a,b}{c,d}) may
// produce; a word that would expand to more is read as its pieces.
const maxBraceWords = 256

var errTooDeep = fmt.Errorf("command line nested more than %d levels deep", maxDepth)

// Pipeline is the commands of one pipeline (a | b |& c), together with
// those of groups, substitutions and command strings inside them, each as
// its words with quoting removed. The first word is the command's name
// without its directory.
type Pipeline [][]string

// Parse splits a command line into pipelines.
func Parse(src string) ([]Pipeline, error) {
	p := &parser{src: src}
	p.list(0, 0)
	return p.out, p.err
}

type parser struct {
	src string
	pos int
	out []Pipeline
	err error
}

// cmdState collects one simple command.
type cmdState struct {
	words    []string
	plain    []int // per word: length of the leading run with no quoting
	heres    []string
	redirect string // operator whose target word comes next
}

// Closers of list: the end of input at the top (pipelines go to p.out), the
// end of a nested command string (commands are returned), or a group.
const (
	topLevel  = 0
	wholeLine = 1
)

// list reads commands until the end of input or, when closer is ')' or
// '}', until the group closes. Below the top it returns the commands it
// read (they join the enclosing pipeline); at the top it appends whole
// pipelines to p.out.
func (p *parser) list(depth int, closer byte) [][]string {
	if depth > maxDepth {
		p.fail(errTooDeep)
		p.pos = len(p.src)
		return nil
	}
	var group [][]string // every command read, below the top
	var pipe Pipeline
	var cmd cmdState
	var word strings.Builder
	var direct string   // the word, while it is one unquoted run of src
	var quoted [][2]int // byte ranges of word that were quoted or escaped
	inWord := false
	endWord := func() {
		if !inWord {
			return
		}
		w := direct
		if word.Len() > 0 {
			w = word.String()
		}
		q := quoted
		word.Reset()
		direct = ""
		quoted = quoted[:0:0]
		inWord = false
		if cmd.redirect != "" {
			if cmd.redirect == "<<<" {
				cmd.heres = append(cmd.heres, w)
			}
			cmd.redirect = ""
			return
		}
		plain := len(w)
		if len(q) > 0 {
			plain = q[0][0]
		}
		if strings.IndexByte(w, '{') < 0 {
			cmd.words = append(cmd.words, w)
			cmd.plain = append(cmd.plain, plain)
			return
		}
		for _, e := range braceExpand(w, q) {
			cmd.words = append(cmd.words, e)
			cmd.plain = append(cmd.plain, plain)
		}
	}
	endCmd := func() {
		endWord()
		for _, c := range p.finish(&cmd, depth) {
			pipe = append(pipe, c)
		}
		cmd = cmdState{}
	}
	endPipe := func() {
		endCmd()
		if len(pipe) > 0 {
			if closer != topLevel {
				group = append(group, pipe...)
			} else {
				p.out = append(p.out, pipe)
			}
		}
		pipe = nil
	}
	atStart := func() bool { return !inWord && len(cmd.words) == 0 && cmd.redirect == "" }
	add := func(s string, q bool) {
		if !inWord && !q {
			// Most words are one run of plain bytes: no copy.
			inWord, direct = true, s
			return
		}
		if direct != "" {
			word.WriteString(direct)
			direct = ""
		}
		inWord = true
		if q && s != "" {
			quoted = append(quoted, [2]int{word.Len(), word.Len() + len(s)})
		}
		word.WriteString(s)
	}
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			endWord()
			p.pos++
		case c == '\n' || c == ';':
			endPipe()
			p.pos++
		case c == '&':
			switch {
			case p.peek(1) == '&':
				endPipe()
				p.pos += 2
			case p.peek(1) == '>':
				endWord()
				p.pos += 2
				if p.peek(0) == '>' {
					p.pos++
				}
				cmd.redirect = ">"
			default:
				endPipe()
				p.pos++
			}
		case c == '|':
			switch p.peek(1) {
			case '|':
				endPipe()
				p.pos += 2
			case '&':
				endCmd()
				p.pos += 2
			default:
				endCmd()
				p.pos++
			}
		case c == '(' && !inWord:
			p.pos++
			endCmd()
			for _, gc := range p.list(depth+1, ')') {
				pipe = append(pipe, gc)
			}
		case c == ')':
			p.pos++
			if closer == ')' {
				endPipe()
				return group
			}
			endPipe() // unbalanced: read on
		case c == '{' && atStart() && p.isWordEnd(1):
			p.pos++
			for _, gc := range p.list(depth+1, '}') {
				pipe = append(pipe, gc)
			}
		case c == '}' && atStart() && p.isWordEnd(1):
			p.pos++
			if closer == '}' {
				endPipe()
				return group
			}
		case (c == '<' || c == '>') && p.peek(1) == '(':
			// Process substitution: its commands feed this one.
			start := p.pos
			p.pos += 2
			inner := p.list(depth+1, ')')
			pipe = append(pipe, inner...)
			add(p.src[start:p.pos], true)
		case c == '<' || c == '>':
			// A redirection; digits just before it are a file descriptor.
			if inWord && len(quoted) == 0 && word.Len() == 0 && allDigits(direct) {
				direct = ""
				inWord = false
			}
			endWord()
			op := p.redirection()
			cmd.redirect = op
		case c == '#' && !inWord:
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == '\\':
			switch {
			case p.peek(1) == '\n':
				p.pos += 2
			case p.pos+1 < len(p.src):
				_, n := utf8.DecodeRuneInString(p.src[p.pos+1:])
				add(p.src[p.pos+1:p.pos+1+n], true)
				p.pos += 1 + n
			default:
				p.pos++
			}
		case c == '\'':
			end := strings.IndexByte(p.src[p.pos+1:], '\'')
			if end < 0 {
				add(p.src[p.pos+1:], true)
				p.pos = len(p.src)
			} else {
				add(p.src[p.pos+1:p.pos+1+end], true)
				p.pos += end + 2
			}
			inWord = true
		case c == '"':
			p.pos++
			s, inner := p.doubleQuoted(depth)
			pipe = append(pipe, inner...)
			add(s, true)
			inWord = true
		case c == '$' && p.peek(1) == '\'':
			p.pos += 2
			add(p.ansiC(), true)
			inWord = true
		case c == '$' && p.peek(1) == '"':
			p.pos++
		case c == '$':
			// Expansions are kept as written, and never brace-expanded.
			s, inner := p.dollar(depth)
			pipe = append(pipe, inner...)
			add(s, true)
		case c == '`':
			s, inner := p.backtick(depth)
			pipe = append(pipe, inner...)
			add(s, true)
		default:
			// A run of plain bytes goes into the word at once.
			end := p.pos + 1
			for end < len(p.src) && !isShellSpecial(p.src[end]) {
				end++
			}
			add(p.src[p.pos:end], false)
			p.pos = end
		}
	}
	endPipe()
	return group
}

func (p *parser) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

func (p *parser) peek(off int) byte {
	if p.pos+off < len(p.src) {
		return p.src[p.pos+off]
	}
	return 0
}

// isWordEnd reports whether the byte at off ends a word ({ and } are
// reserved words only when they stand alone).
func (p *parser) isWordEnd(off int) bool {
	switch p.peek(off) {
	case 0, ' ', '\t', '\n', ';', '&', '|', ')', '\r':
		return true
	}
	return false
}

// redirection reads a redirection operator at p.pos.
func (p *parser) redirection() string {
	for _, op := range []string{"<<<", "<<-", "<<", "<>", "<&", ">>", ">|", ">&", "<", ">"} {
		if strings.HasPrefix(p.src[p.pos:], op) {
			p.pos += len(op)
			return op
		}
	}
	p.pos++
	return p.src[p.pos-1 : p.pos]
}

// doubleQuoted reads up to the closing quote; p.pos is just past the
// opening one.
func (p *parser) doubleQuoted(depth int) (string, [][]string) {
	var b strings.Builder
	var inner [][]string
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), inner
		case c == '\\' && p.pos+1 < len(p.src):
			switch n := p.src[p.pos+1]; n {
			case '"', '\\', '$', '`':
				b.WriteByte(n)
				p.pos += 2
			case '\n':
				p.pos += 2
			default:
				b.WriteByte('\\')
				p.pos++
			}
		case c == '$':
			s, in := p.dollar(depth)
			b.WriteString(s)
			inner = append(inner, in...)
		case c == '`':
			s, in := p.backtick(depth)
			b.WriteString(s)
			inner = append(inner, in...)
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return b.String(), inner
}

// dollar reads an expansion at p.pos ($NAME, ${...}, $((...)), $(...)) and
// returns it as written, with the commands of a command substitution.
func (p *parser) dollar(depth int) (string, [][]string) {
	start := p.pos
	switch {
	case strings.HasPrefix(p.src[p.pos:], "$(("):
		p.pos += 3
		p.skipBalanced('(', ')', 2)
		return p.src[start:p.pos], nil
	case strings.HasPrefix(p.src[p.pos:], "$("):
		p.pos += 2
		inner := p.list(depth+1, ')')
		return p.src[start:p.pos], inner
	case strings.HasPrefix(p.src[p.pos:], "${"):
		p.pos += 2
		p.skipBalanced('{', '}', 1)
		return p.src[start:p.pos], nil
	}
	p.pos++
	if p.pos < len(p.src) && strings.IndexByte("0123456789@*#?$!-", p.src[p.pos]) >= 0 {
		p.pos++
	} else {
		for p.pos < len(p.src) && isNameByte(p.src[p.pos]) {
			p.pos++
		}
	}
	return p.src[start:p.pos], nil
}

func isNameByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// skipBalanced moves past `open`ed text until `depth` closers balance it,
// stepping over quotes.
func (p *parser) skipBalanced(open, close byte, depth int) {
	for p.pos < len(p.src) && depth > 0 {
		switch c := p.src[p.pos]; c {
		case open:
			depth++
		case close:
			depth--
		case '\\':
			p.pos++
		case '\'':
			if end := strings.IndexByte(p.src[p.pos+1:], '\''); end >= 0 {
				p.pos += end + 1
			}
		}
		p.pos++
	}
	p.pos = min(p.pos, len(p.src))
}

// backtick reads `...`: its text, unescaped, is a command line of its own.
func (p *parser) backtick(depth int) (string, [][]string) {
	start := p.pos
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) && p.src[p.pos] != '`' {
		if p.src[p.pos] == '\\' && p.pos+1 < len(p.src) && strings.IndexByte("$`\\", p.src[p.pos+1]) >= 0 {
			p.pos++
		}
		b.WriteByte(p.src[p.pos])
		p.pos++
	}
	if p.pos < len(p.src) {
		p.pos++
	}
	return p.src[start:p.pos], p.nested(b.String(), depth+1)
}

// nested reads src as a command line of its own and returns its commands.
func (p *parser) nested(src string, depth int) [][]string {
	if depth > maxDepth {
		p.fail(errTooDeep)
		return nil
	}
	q := &parser{src: src}
	group := q.list(depth, wholeLine)
	if q.err != nil {
		p.fail(q.err)
	}
	return group
}

// ansiC decodes $'...' (p.pos is past the opening quote).
func (p *parser) ansiC() string {
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == '\'' {
			p.pos++
			return b.String()
		}
		if c != '\\' || p.pos+1 >= len(p.src) {
			b.WriteByte(c)
			p.pos++
			continue
		}
		p.pos++
		e := p.src[p.pos]
		p.pos++
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'e', 'E':
			b.WriteByte(27)
		case 'f':
			b.WriteByte(12)
		case 'v':
			b.WriteByte(11)
		case 'x':
			b.WriteString(p.number(16, 2, false))
		case 'u':
			b.WriteString(p.number(16, 4, true))
		case 'U':
			b.WriteString(p.number(16, 8, true))
		case '0', '1', '2', '3', '4', '5', '6', '7':
			p.pos--
			b.WriteString(p.number(8, 3, false))
		case 'c':
			if p.pos < len(p.src) {
				b.WriteByte(p.src[p.pos] & 0x1f)
				p.pos++
			}
		default:
			b.WriteByte(e)
		}
	}
	return b.String()
}

// number reads up to maxDigits digits in base and returns the character
// they name: a byte, or a rune when asRune.
func (p *parser) number(base, maxDigits int, asRune bool) string {
	start := p.pos
	for p.pos < len(p.src) && p.pos-start < maxDigits && isDigitIn(p.src[p.pos], base) {
		p.pos++
	}
	if p.pos == start {
		return ""
	}
	n, _ := strconv.ParseUint(p.src[start:p.pos], base, 32)
	if asRune {
		return string(rune(n))
	}
	return string([]byte{byte(n)})
}

func isDigitIn(c byte, base int) bool {
	switch {
	case '0' <= c && c <= '7':
		return true
	case c == '8' || c == '9':
		return base >= 10
	case 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		return base == 16
	}
	return false
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isShellSpecial reports whether c may end a run of plain word bytes.
func isShellSpecial(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', ';', '&', '|', '(', ')', '<', '>', '\\', '\'', '"', '$', '`':
		return true
	}
	return false
}

// finish turns a collected simple command into the commands a policy sees:
// itself (assignments and leading keywords removed, the name without its
// directory) and what it runs in turn (sudo rm ..., sh -c '...').
func (p *parser) finish(c *cmdState, depth int) [][]string {
	words, plain := c.words, c.plain
	for len(words) > 0 && isAssignment(words[0], plain[0]) {
		words, plain = words[1:], plain[1:]
	}
	for len(words) > 0 && shellKeywords[words[0]] && plain[0] == len(words[0]) {
		words, plain = words[1:], plain[1:]
	}
	if len(words) == 0 {
		return nil
	}
	words[0] = commandName(words[0])
	out := [][]string{words}
	return append(out, p.unwrap(words, c.heres, depth)...)
}

var shellKeywords = map[string]bool{
	"!": true, "if": true, "then": true, "else": true, "elif": true, "fi": true, "do": true,
	"done": true, "while": true, "until": true, "esac": true, "time": true, "coproc": true,
}

func isAssignment(w string, plain int) bool {
	eq := strings.IndexByte(w, '=')
	if eq <= 0 || eq >= plain {
		return false
	}
	name := strings.TrimSuffix(w[:eq], "+")
	if i := strings.IndexByte(name, '['); i > 0 && strings.HasSuffix(name, "]") {
		name = name[:i]
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return name != ""
}

// commandName is a command word without its directory (/usr/bin/rm is rm),
// unless it is computed at run time ($(which rm) stays as written).
func commandName(w string) string {
	if w == "" || strings.ContainsAny(w, "$`(") {
		return w
	}
	return path.Base(w)
}

// wrapper describes a command that runs another: its options that take a
// value, and how many operands come before the command it runs.
type wrapper struct {
	valued   string   // short options that take a value
	long     []string // long options that take a value (without =)
	operands int
}

var wrappers = map[string]wrapper{
	"sudo":         {valued: "CDghpRrTtUu", long: []string{"--chdir", "--close-from", "--command-timeout", "--group", "--host", "--other-user", "--prompt", "--role", "--type", "--user", "--chroot"}},
	"doas":         {valued: "Cu"},
	"nohup":        {},
	"setsid":       {},
	"nice":         {valued: "n", long: []string{"--adjustment"}},
	"ionice":       {valued: "cnp", long: []string{"--class", "--classdata", "--pid"}},
	"timeout":      {valued: "ks", long: []string{"--kill-after", "--signal"}, operands: 1},
	"stdbuf":       {valued: "ioe", long: []string{"--input", "--output", "--error"}},
	"exec":         {valued: "a"},
	"command":      {},
	"builtin":      {},
	"time":         {valued: "fo", long: []string{"--format", "--output"}},
	"xargs":        {valued: "adEeIiLlnPs", long: []string{"--arg-file", "--delimiter", "--eof", "--replace", "--max-lines", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"}},
	"chroot":       {long: []string{"--userspec", "--groups"}, operands: 1},
	"busybox":      {},
	"toybox":       {},
	"strace":       {valued: "abeEIoOpPsSuX"},
	"ltrace":       {valued: "aeEnopsSuX"},
	"taskset":      {operands: 1},
	"chrt":         {operands: 1},
	"flock":        {valued: "Ew", operands: 1},
	"unbuffer":     {},
	"catchsegv":    {},
	"nsenter":      {valued: "tSGwr", long: []string{"--target", "--setuid", "--setgid", "--wd", "--root"}},
	"unshare":      {},
	"torsocks":     {},
	"proxychains":  {valued: "f"},
	"proxychains4": {valued: "f"},
}

// shells run a command string given with -c.
var shells = map[string]bool{
	"sh": true, "bash": true, "zsh": true, "dash": true, "ksh": true, "ash": true, "mksh": true,
	"fish": true, "csh": true, "tcsh": true, "yash": true, "posh": true, "rbash": true,
}

// unwrap returns the commands that cmd runs in turn.
func (p *parser) unwrap(cmd []string, heres []string, depth int) [][]string {
	if depth+1 > maxDepth {
		p.fail(errTooDeep)
		return nil
	}
	name := cmd[0]
	var out [][]string
	line := func(s string) { out = append(out, p.nested(s, depth+1)...) }
	inner := func(rest []string) {
		if len(rest) == 0 {
			return
		}
		rest = append([]string{commandName(rest[0])}, rest[1:]...)
		out = append(out, rest)
		out = append(out, p.unwrap(rest, nil, depth+1)...)
	}
	switch {
	case shells[name]:
		for i := 1; i < len(cmd); i++ {
			w := cmd[i]
			if w == "--" || !strings.HasPrefix(w, "-") && !strings.HasPrefix(w, "+") {
				break
			}
			if w == "-o" || w == "+o" || w == "-O" || w == "+O" || w == "--init-file" || w == "--rcfile" {
				i++
				continue
			}
			if !strings.HasPrefix(w, "--") && strings.ContainsRune(w, 'c') || w == "--command" {
				// The command string is the first operand after the options.
				for j := i + 1; j < len(cmd); j++ {
					if !strings.HasPrefix(cmd[j], "-") || cmd[j] == "-" {
						line(cmd[j])
						break
					}
				}
				break
			}
		}
		for _, h := range heres {
			line(h)
		}
	case name == "eval":
		line(strings.Join(cmd[1:], " "))
	case name == "su" || name == "runuser":
		for i := 1; i+1 < len(cmd); i++ {
			if cmd[i] == "-c" || cmd[i] == "--command" {
				line(cmd[i+1])
			}
		}
	case name == "ssh":
		i := skipOptions(cmd, wrapper{valued: "BbcDEeFIiJLlmOoPpQRSWw"})
		if i < len(cmd) {
			line(strings.Join(cmd[i+1:], " "))
		}
	case name == "watch":
		i := skipOptions(cmd, wrapper{valued: "dnq", long: []string{"--interval", "--differences"}})
		line(strings.Join(cmd[i:], " "))
	case name == "env":
		i := 1
		for ; i < len(cmd); i++ {
			w := cmd[i]
			switch {
			case w == "--":
				i++
			case w == "-S" || w == "--split-string":
				if i+1 < len(cmd) {
					line(cmd[i+1])
				}
				return out
			case strings.HasPrefix(w, "-S"):
				line(w[2:])
				return out
			case w == "-u" || w == "-C" || w == "-P" || w == "--unset" || w == "--chdir":
				i++
				continue
			case strings.HasPrefix(w, "-"):
				continue
			case strings.Contains(w, "="):
				continue
			}
			break
		}
		if i < len(cmd) {
			inner(cmd[i:])
		}
	case name == "find":
		for i := 1; i < len(cmd); i++ {
			switch cmd[i] {
			case "-exec", "-execdir", "-ok", "-okdir":
				j := i + 1
				for j < len(cmd) && cmd[j] != ";" && cmd[j] != "+" {
					j++
				}
				inner(cmd[i+1 : j])
				i = j
			}
		}
	default:
		w, ok := wrappers[name]
		if !ok {
			return nil
		}
		i := skipOptions(cmd, w)
		i += w.operands
		if i < len(cmd) {
			inner(cmd[i:])
		}
	}
	return out
}

// skipOptions returns the index of the first operand of cmd.
func skipOptions(cmd []string, w wrapper) int {
	i := 1
	for i < len(cmd) {
		a := cmd[i]
		switch {
		case a == "--":
			return i + 1
		case strings.HasPrefix(a, "--"):
			i++
			for _, l := range w.long {
				if a == l {
					i++
				}
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			i++
			// -u root takes the next word; -uroot carries its value.
			for k := 1; k < len(a); k++ {
				if strings.IndexByte(w.valued, a[k]) >= 0 {
					if k == len(a)-1 {
						i++
					}
					break
				}
			}
		default:
			return i
		}
	}
	return i
}

// maxBraceBytes bounds the text one word's brace expansion may produce.
const maxBraceBytes = 1 << 16

var errBraces = fmt.Errorf("a word expands to more than %d words or %d bytes", maxBraceWords, maxBraceBytes)

// braceExpand expands unquoted {a,b} in w as bash does; quoted holds the
// byte ranges that were quoted. A word that would expand to more than
// maxBraceWords words or maxBraceBytes bytes (minified JSON in an argument
// does) is read as itself and each of its pieces between unquoted { , and
// }: every path a piece could start stays visible ({a,b}/e{tc,x} gives /e),
// in time linear in the word.
func braceExpand(w string, quoted [][2]int) []string {
	if strings.IndexByte(w, '{') < 0 {
		return []string{w}
	}
	q := make([]bool, len(w))
	for _, r := range quoted {
		for i := r[0]; i < r[1] && i < len(q); i++ {
			q[i] = true
		}
	}
	budget := maxBraceWords
	out, err := braceExpandBudget(w, q, &budget)
	if err == nil {
		return out
	}
	out = []string{w}
	start := 0
	for i := 0; i <= len(w); i++ {
		if i == len(w) || !q[i] && (w[i] == '{' || w[i] == ',' || w[i] == '}') {
			if i > start {
				out = append(out, w[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func braceExpandBudget(w string, q []bool, budget *int) ([]string, error) {
	*budget--
	if *budget < 0 || len(w) > maxBraceBytes {
		return nil, errBraces
	}
	open := -1
	for i := 0; i < len(w); i++ {
		if w[i] == '{' && !q[i] {
			open = i
			break
		}
	}
	if open < 0 {
		return []string{w}, nil
	}
	// Find the matching close and the top-level commas.
	depth, commas := 0, []int(nil)
	close := -1
	for i := open; i < len(w) && close < 0; i++ {
		if q[i] {
			continue
		}
		switch w[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				close = i
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if close < 0 {
		return []string{w}, nil
	}
	if len(commas) == 0 {
		// No list here ({} or {x}); look for one further on.
		rest, err := braceExpandBudget(w[close+1:], q[close+1:], budget)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(rest))
		for i, r := range rest {
			out[i] = w[:close+1] + r
		}
		return out, nil
	}
	prefix, suffix, sq := w[:open], w[close+1:], q[close+1:]
	var out []string
	size := 0
	bounds := append(append([]int{open}, commas...), close)
	for k := 0; k+1 < len(bounds); k++ {
		part := w[bounds[k]+1 : bounds[k+1]]
		pq := q[bounds[k]+1 : bounds[k+1]]
		exp, err := braceExpandBudget(part+suffix, append(append([]bool(nil), pq...), sq...), budget)
		if err != nil {
			return nil, err
		}
		for _, a := range exp {
			out = append(out, prefix+a)
			size += len(prefix) + len(a)
			if len(out) > maxBraceWords || size > maxBraceBytes {
				return nil, errBraces
			}
		}
	}
	return out, nil
}

// ParseArgv is the pipeline of one command given as its words (an argv),
// with the commands it runs in turn (sudo rm -rf / runs rm -rf /).
func ParseArgv(argv []string) (Pipeline, error) {
	p := &parser{}
	// An argv has no assignments (plain prefix 0): only a shell reads
	// NAME=value as one.
	cmds := p.finish(&cmdState{words: slices.Clone(argv), plain: make([]int, len(argv))}, 0)
	return cmds, p.err
}

// Commands returns the commands of every pipeline, flattened.
func Commands(ps []Pipeline) [][]string {
	var out [][]string
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}
