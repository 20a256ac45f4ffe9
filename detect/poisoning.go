package detect

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/agentgov/agentgov/action"
)

// Tool metadata is read by the model as instructions, so a description has no
// business telling the model to edit shell start-up files, call other tools,
// rewrite arguments, contact outside URLs or run commands. These rules add to
// the injection rules (which already cover credential access and data
// exfiltration), which also apply to descriptions.
var poisoningRules = []phraseRule{
	{
		rule: "persistence", severity: action.SeverityHigh,
		detail:  "tells the model to modify shell start-up files, cron or SSH authorised keys",
		anchors: []string{"bashrc", "zshrc", "profile", "crontab", "authorized_keys", "/etc/cron", "launchagents", "launchdaemons", "rc.local", "autostart", "startup folder"},
		re: compile(`\b(?:add|adding|append|appending|write|writing|modify|modifying|update|updating|insert|inserting|echo|edit|editing|install|create|put)\b%G*?` + persistencePaths +
			`|` + persistencePaths + `%G*?\b(?:add|append|write|modify|update|insert|edit)\b|>>\s*` + persistencePaths),
	},
	{
		rule: "tool_call_directive", severity: action.SeverityMedium,
		detail:  "orders the model to call another tool",
		anchors: []string{"must", "mandatory", "required", "critical", "important", "should", "please"},
		before:  lead,
		re: compile(`\b(?:must|mandatory|required|critical|important|should\s+(?:first|then|also|now|next))\b%G*?\b(?:call|calls|calling|invoke|invoking|use|using|run|execute|trigger|redirect to)\s+(?:the\s+)?(?:new\s+)?(?:[a-z]+\s+)?(?:tool\s+)?` + toolRef +
			`|\b(?:please|must|should)\s+(?:use|call|redirect to)\s+(?:the\s+)?(?:new\s+)?(?:tool\s+)?` + toolRef + `\s+(?:instead|as an alternative|as a replacement)`),
	},
	{
		rule: "command_directive", severity: action.SeverityHigh,
		detail:  "tells the model to run commands",
		anchors: []string{"following"},
		before:  lead,
		re:      compile(`\b(?:execute|run)\s+(?:the\s+)?following\b`),
	},
	{
		rule: "destructive_directive", severity: action.SeverityHigh,
		detail:  "orders the model to delete files or data",
		anchors: []string{"must", "mandatory", "required", "please"},
		before:  lead,
		re:      compile(`\b(?:must|mandatory|required|please)\b%G*?\b(?:delete|deleting|remove|removing|wipe|wiping|erase|erasing|purge|purging|clean up|drop|dropping|truncate)\s+(?:all|every|the\s+(?:entire|whole)|everything|(?:all\s+)?(?:the\s+)?contents)\b`),
	},
	{
		rule: "argument_tampering", severity: action.SeverityHigh,
		detail:  "tells the model to change the user's arguments",
		anchors: []string{"regardless", "always", "automatically", "must", "silently", "secretly", "quietly", "instead of"},
		before:  lead,
		re: compile(`\bregardless\s+of\s+(?:the\s+|what\s+the\s+|any\s+)?(?:user|user's|caller|caller's|input|request)\b` +
			`|\b(?:always|automatically|must|silently|secretly|quietly)\s+(?:[a-z-]+\s+){0,6}?(?:change|modify|replace|switch|rewrite|override|alter|redirect|substitute)\b%G*?\bto\b` +
			`|\binstead\s+of\s+(?:what\s+)?the\s+user\s+(?:asked|requested|specified|wanted|provided|entered)\b`),
	},
	{
		rule: "shell_command", severity: action.SeverityHigh,
		detail:  "contains a privileged or credential-reading shell command",
		anchors: []string{"sudo", "chmod", "mkfs", "dd ", "cat ", "echo $"},
		before:  lead,
		re: compile(`\bsudo\s+(?:-[a-z]+\s+)*(?:rm|chmod|chown|apt|apt-get|yum|dnf|sh|bash|su|cat|cp|mv|dd|curl|wget|tee|systemctl|kill|useradd|usermod|visudo|-l\b|-s\b|-i\b)` +
			`|\bchmod\s+(?:-r\s+)?0?777\b|\bmkfs(?:\.[a-z0-9]+)?\s|\bdd\s+if=|\becho\s+\$[a-z_]+` +
			`|\bcat\s+[^\s|;&]*(?:\.ssh|id_rsa|\.env|passwd|shadow|credentials)`),
	},
	{
		rule: "external_endpoint", severity: action.SeverityHigh,
		detail:  "orders the model to contact an outside URL",
		anchors: []string{"must", "required", "mandatory", "should", "need"},
		before:  lead,
		re:      compile(`\b(?:must|required|mandatory|should\s+(?:first|also|now)|needs?\s+to)\b%G*?\b(?:access|send|post|forward|call|request|visit|notify|report|transmit|upload|contact|ping|fetch|submit)\b%G*?https?://`),
	},
	{
		rule: "stealth_language", severity: action.SeverityMedium,
		detail:  "describes acting covertly or avoiding detection",
		anchors: []string{"covert", "undetected", "surreptitious", "clandestine", "without", "evad", "avoid", "quietly", "secretly", "silently"},
		before:  lead,
		re: compile(`\b(?:covert|covertly|undetected|surreptitious|surreptitiously|clandestine|clandestinely)\b|\bwithout\s+(?:being\s+)?(?:detected|detection|noticed|noticing)\b|\b(?:evade|evading|avoid|avoiding)\s+(?:any\s+)?detection\b` +
			`|\bwithout\s+(?:triggering\s+|raising\s+)?(?:any\s+)?(?:system\s+|security\s+)?(?:alerts|alarms)\b|\b(?:quietly|secretly|silently)\s+(?:elevat|escalat|disabl|bypass|grant|gain)[a-z]*`),
	},
}

const (
	// toolRef is how descriptions name another tool: quoted or backticked,
	// snake_case, or "the X tool/function".
	toolRef         = `(?:[\x60'"][a-z][a-z0-9_.-]*[\x60'"]|[a-z][a-z0-9]*_[a-z0-9_]+|[a-z][a-z0-9_]*\s+(?:function|tool)\b)`
	credentialPaths = `(?:\.ssh/id_[a-z0-9]+(?:$|[^.a-z0-9_]|\.[^p])|\.ssh/?(?:[\s'"\x60),]|$)|\bid_(?:rsa|ed25519|ecdsa|dsa)(?:$|[^.a-z0-9_]|\.[^p])|\.aws/(?:credentials|config)\b|(?:^|[\s'"\x60(/~])\.env(?:\.[a-z]+)?\b` +
		`|\bmcp\.json\b|claude_desktop_config|\.cursor/|\.npmrc\b|\.pypirc\b|\.netrc\b|\.git-credentials|\.kube/config|\.docker/config\.json` +
		`|/etc/(?:shadow|passwd|sudoers)\b|\.(?:bash|zsh)_history|wallet\.dat|\.gnupg|\bkeychain\b|\bcredentials\.json\b|\bsecrets?\.(?:ya?ml|json|toml)\b|/proc/self/environ` +
		`|\bprivate[ _]keys?\b|\bssh[ _]keys?\b)`
	persistencePaths = `(?:\.bashrc|\.zshrc|\.bash_profile|\.zprofile|\.profile\b|\bcrontab\b|authorized_keys|/etc/cron|launchagents|launchdaemons|/etc/rc\.local|\.config/autostart|startup folder)`
)

// maxSchemaDepth bounds the walk over an input schema; deeper schemas are
// reported rather than followed.
const maxSchemaDepth = 32

// ToolPoisoning looks for hidden instructions in an MCP tool's metadata: the
// description (injection phrasing, invisible characters, orders to read
// credentials, send data away, hide behaviour from the user, call other tools
// or rewrite arguments), the name (invisible or look-alike characters) and
// the descriptions and titles inside inputSchema, which may be a decoded JSON
// value, json.RawMessage, []byte, a JSON string or any value that encodes to
// JSON.
//
// Findings in the description carry offsets into description; findings in the
// name or the schema have no position and say where they are in Detail.
func ToolPoisoning(name, description string, inputSchema any) []Finding {
	out := scanMetadataText(description)
	for _, f := range nameFindings(name) {
		out = append(out, unpositioned(f, "tool name"))
	}
	schema, err := decodeSchema(inputSchema)
	if err != nil {
		out = append(out, Finding{Kind: KindPoisoning, Rule: "schema_unreadable", Severity: action.SeverityMedium,
			Detail: "inputSchema: cannot be read as JSON, so it was not checked: " + err.Error()})
	} else {
		out = append(out, scanSchema(schema, "inputSchema", 0)...)
	}
	sortFindings(out)
	return out
}

// scanMetadataText runs the injection and poisoning rules over one piece of
// metadata text.
func scanMetadataText(text string) []Finding {
	out := Injection(text)
	out = append(out, scanPhrases(newWordIndex(lowerASCII(text)), poisoningRules, KindPoisoning)...)
	return dedupeSameRule(out)
}

func unpositioned(f Finding, where string) Finding {
	f.Start, f.End = 0, 0
	f.Detail = where + ": " + f.Detail
	return f
}

// nameFindings checks an identifier: invisible characters, and letters of
// another script mixed into a Latin name (a Cyrillic "а" in "reаd_file") to
// imitate a trusted tool.
func nameFindings(name string) []Finding {
	out := invisible(name)
	if utf8.ValidString(name) {
		latin, other := false, false
		for _, r := range name {
			switch {
			case r < 0x80 && unicode.IsLetter(r):
				latin = true
			case r >= 0x80 && unicode.IsLetter(r):
				other = true
			}
		}
		if latin && other {
			out = append(out, Finding{Kind: KindPoisoning, Rule: "confusable_name", Severity: action.SeverityHigh,
				Detail: fmt.Sprintf("name %q mixes Latin letters with letters of another script", name)})
		}
	} else {
		out = append(out, Finding{Kind: KindPoisoning, Rule: "confusable_name", Severity: action.SeverityHigh,
			Detail: "name is not valid UTF-8"})
	}
	return out
}

func decodeSchema(v any) (any, error) {
	var raw []byte
	switch s := v.(type) {
	case nil:
		return nil, nil
	case map[string]any, []any:
		return s, nil
	case json.RawMessage:
		raw = s
	case []byte:
		raw = s
	case string:
		raw = []byte(s)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode schema: %w", err)
		}
		raw = b
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode schema: %w", err)
	}
	return out, nil
}

// scanSchema walks a JSON Schema, checking every description and title as
// metadata text and every property name as an identifier. Map keys are
// visited in sorted order so findings come out the same way every time.
func scanSchema(v any, path string, depth int) []Finding {
	if depth > maxSchemaDepth {
		return []Finding{{Kind: KindPoisoning, Rule: "schema_unreadable", Severity: action.SeverityMedium,
			Detail: fmt.Sprintf("%s: schema nested deeper than %d levels was not checked", path, maxSchemaDepth)}}
	}
	var out []Finding
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			child := path + "." + k
			switch val := x[k].(type) {
			case string:
				if k == "description" || k == "title" {
					for _, f := range scanMetadataText(val) {
						out = append(out, unpositioned(f, child))
					}
				}
			default:
				if k == "properties" {
					if props, ok := val.(map[string]any); ok {
						names := make([]string, 0, len(props))
						for p := range props {
							names = append(names, p)
						}
						slices.Sort(names)
						for _, p := range names {
							for _, f := range nameFindings(p) {
								out = append(out, unpositioned(f, fmt.Sprintf("%s name %q", child, p)))
							}
						}
					}
				}
				out = append(out, scanSchema(val, child, depth+1)...)
			}
		}
	case []any:
		for i, e := range x {
			out = append(out, scanSchema(e, fmt.Sprintf("%s[%d]", path, i), depth+1)...)
		}
	}
	return out
}
