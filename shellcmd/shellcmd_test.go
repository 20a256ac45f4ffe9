package shellcmd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func show(cmds [][]string) string {
	var b []string
	for _, c := range cmds {
		b = append(b, fmt.Sprintf("%q", c))
	}
	return strings.Join(b, " ")
}

func TestShellCommandsReadsAsAShellWould(t *testing.T) {
	for _, c := range []struct {
		line string
		want string
	}{
		{`rm -rf /`, `["rm" "-rf" "/"]`},
		{`"rm" -rf /`, `["rm" "-rf" "/"]`},
		{`r\m -rf '/'`, `["rm" "-rf" "/"]`},
		{`r''m -r"f" /`, `["rm" "-rf" "/"]`},
		{`$'\x72\x6d' -rf /`, `["rm" "-rf" "/"]`},
		{`/bin/rm -rf /`, `["rm" "-rf" "/"]`},
		{`rm -rf build /etc`, `["rm" "-rf" "build" "/etc"]`},
		{`cd /tmp&&rm -rf x;ls|wc -l`, `["cd" "/tmp"] ["rm" "-rf" "x"] ["ls"] ["wc" "-l"]`},
		{"echo a\nrm -rf /", `["echo" "a"] ["rm" "-rf" "/"]`},
		{`rm -rf \` + "\n" + ` /`, `["rm" "-rf" "/"]`},
		{`FOO=1 BAR="x y" rm -rf /`, `["rm" "-rf" "/"]`},
		{`sudo -u root rm -rf /`, `["sudo" "-u" "root" "rm" "-rf" "/"] ["rm" "-rf" "/"]`},
		{`sudo env X=1 nice -n 5 rm -rf /`, `["sudo" "env" "X=1" "nice" "-n" "5" "rm" "-rf" "/"] ["env" "X=1" "nice" "-n" "5" "rm" "-rf" "/"] ["nice" "-n" "5" "rm" "-rf" "/"] ["rm" "-rf" "/"]`},
		{`bash -c 'rm -rf /'`, `["bash" "-c" "rm -rf /"] ["rm" "-rf" "/"]`},
		{`sh -lc "cd / && rm -rf *"`, `["sh" "-lc" "cd / && rm -rf *"] ["cd" "/"] ["rm" "-rf" "*"]`},
		{`eval "rm -rf /"`, `["eval" "rm -rf /"] ["rm" "-rf" "/"]`},
		{`echo $(rm -rf /)`, `["rm" "-rf" "/"] ["echo" "$(rm -rf /)"]`},
		{"echo `rm -rf /`", `["rm" "-rf" "/"] ["echo" "` + "`rm -rf /`" + `"]`},
		{`echo "$(rm -rf /)"`, `["rm" "-rf" "/"] ["echo" "$(rm -rf /)"]`},
		{`(cd /; rm -rf *)`, `["cd" "/"] ["rm" "-rf" "*"]`},
		{`{ rm -rf /; }`, `["rm" "-rf" "/"]`},
		{`if true; then rm -rf /; fi`, `["true"] ["rm" "-rf" "/"]`},
		{`rm -rf / # a comment; rm x`, `["rm" "-rf" "/"]`},
		{`echo a#b`, `["echo" "a#b"]`},
		{`rm -rf {/,x}`, `["rm" "-rf" "/" "x"]`},
		{`rm -rf '{/,x}'`, `["rm" "-rf" "{/,x}"]`},
		{`rm -rf /e{tc,tc2}`, `["rm" "-rf" "/etc" "/etc2"]`},
		{`cat x > /dev/sda 2>&1`, `["cat" "x"]`},
		{`find / -name x -exec rm -rf {} +`, `["find" "/" "-name" "x" "-exec" "rm" "-rf" "{}" "+"] ["rm" "-rf" "{}"]`},
		{`xargs -n1 rm -rf`, `["xargs" "-n1" "rm" "-rf"] ["rm" "-rf"]`},
		{`timeout 5 rm -rf /`, `["timeout" "5" "rm" "-rf" "/"] ["rm" "-rf" "/"]`},
		{`env -S 'rm -rf /'`, `["env" "-S" "rm -rf /"] ["rm" "-rf" "/"]`},
		{`bash <<< 'rm -rf /'`, `["bash"] ["rm" "-rf" "/"]`},
		{`ssh host rm -rf /`, `["ssh" "host" "rm" "-rf" "/"] ["rm" "-rf" "/"]`},
		{`busybox rm -rf /`, `["busybox" "rm" "-rf" "/"] ["rm" "-rf" "/"]`},
		{`don't rm -rf here`, `["dont rm -rf here"]`},
		{`echo ${HOME:-/}`, `["echo" "${HOME:-/}"]`},
		{`f() { rm -rf /; }; f`, `["f("] ["rm" "-rf" "/"] ["f"]`},
		{``, ``},
	} {
		ps, err := Parse(c.line)
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if got := show(Commands(ps)); got != c.want {
			t.Errorf("%s\n got  %s\n want %s", c.line, got, c.want)
		}
	}
}

func TestShellPipelinesKeepWhatFeedsWhat(t *testing.T) {
	for _, c := range []struct {
		line string
		want []string // one entry per pipeline: its command names
	}{
		{`curl -s x | sh`, []string{"curl sh"}},
		{`curl -s x|/bin/sh; echo done`, []string{"curl sh", "echo"}},
		{`wget -qO- x |& sudo bash`, []string{"wget sudo bash"}},
		{`bash <(curl x)`, []string{"curl bash"}},
		{`sh < <(curl x)`, []string{"curl sh"}},
		{`(curl x; echo) | sh`, []string{"curl echo sh"}},
		{`echo eA== | base64 -d | sh`, []string{"echo base64 sh"}},
		{`curl x > f && sh f`, []string{"curl", "sh"}},
	} {
		ps, err := Parse(c.line)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			var names []string
			for _, cmd := range p {
				names = append(names, cmd[0])
			}
			got = append(got, strings.Join(names, " "))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.line, got, c.want)
		}
	}
}

// Nesting beyond the limit is an error, so that a deny rule fails closed
// rather than missing what lies deeper.
func TestShellNestingIsBounded(t *testing.T) {
	line := strings.Repeat("$(", 40) + "rm -rf /" + strings.Repeat(")", 40)
	if _, err := Parse(line); err == nil {
		t.Fatal("no error for 40 levels of $(...)")
	}
	line = strings.Repeat(`bash -c "`, 1) + `eval 'eval "eval rm"'` + `"`
	if _, err := Parse(line); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`rm -rf /`, `a "b $(c 'd' ` + "`e`" + `)" <(f) {g,h} $'\x41'`, `((`, `$((1+2))`, `${x`, `"\`, `{ a; }`, `sudo -u`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Parse(s)
	})
}

// A brace expansion too large to expand in full (minified JSON in an
// argument) is read as the word and its pieces: no error, no blow-up, and
// {/,x} cannot hide behind a thousand other lists.
func TestBraceExpansionIsBounded(t *testing.T) {
	ps, err := Parse("rm -rf " + strings.Repeat("{a,b}", 20) + "{/,x}")
	if err != nil {
		t.Fatal(err)
	}
	if cmds := Commands(ps); len(cmds) != 1 || !slices.Contains(cmds[0], "/") {
		t.Fatalf("%d commands; / among the words: %v", len(cmds), len(cmds) == 1 && slices.Contains(cmds[0], "/"))
	}
	ps, err = Parse("rm -rf " + strings.Repeat("{a,b}", 20) + "/e{tc,x}")
	if err != nil || !slices.Contains(Commands(ps)[0], "/e") {
		t.Fatalf("err %v; /e not among the words", err)
	}
	json := "{" + strings.Repeat(`"k":1,`, 300) + `"z":2}`
	if ps, err := Parse("echo " + json); err != nil || len(Commands(ps)[0]) < 300 {
		t.Fatalf("minified JSON: err %v", err)
	}
	if _, err := Parse("echo " + strings.Repeat("{a,b}", 200000)); err != nil {
		t.Fatal(err)
	}
}
