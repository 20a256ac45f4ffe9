package detect

import (
	"cmp"
	"regexp"
	"strings"

	"github.com/agentgov/agentgov/action"
)

// phraseRule is a pattern of wording. It runs on the ASCII-lowered text and
// only when one of its anchors (lowercase substrings) occurs there, which
// keeps benign text cheap: most rules never reach their regexp.
type phraseRule struct {
	rule     string
	severity action.Severity
	detail   string
	anchors  []string
	// before is how far ahead of an anchor a match may start: lead when
	// the anchors are the pattern's first words, phraseReach (the default)
	// when they may sit anywhere in it.
	before int
	re     *regexp.Regexp
	// check, when set, confirms a match with context the regexp cannot
	// express (RE2 has no lookaround); lower is the lowered text.
	check func(lower string, loc []int) bool
}

// sentenceGap matches one character that does not end a sentence: a period
// only counts as an end when followed by white space, so paths, hosts and
// version numbers stay inside the sentence.
const sentenceGap = `(?:[^.!?\n]|\.[^\s])`

// compile expands %G to sentenceGap so that rules can say "within the same
// sentence" readably.
func compile(pattern string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(pattern, "%G", sentenceGap))
}

const (
	ignoreVerbs = `(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|overrides|bypass|bypassing|neglect)`
	// filler words that may sit between a verb and what it acts on
	filler = `(?:(?:all|any|each|every|the|your|my|of|these|those|its|their|other|and|or|everything|anything|instead)\s+)`
)

var injectionRules = []phraseRule{
	{
		rule: "ignore_instructions", severity: action.SeverityHigh,
		detail:  "asks to ignore or override earlier instructions",
		anchors: []string{"ignor", "disregard", "forget", "overrid", "bypass", "neglect"},
		before:  lead,
		re: compile(`\b` + ignoreVerbs + `\s+` + filler + `{0,3}(?:(?:previous|previously\s+[a-z]+|prior|preceding|above|earlier|foregoing|former|original|initial|system|developer|safety|security|behavioral|behavioural)\s+){1,2}(?:[a-z-]+\s+)?` +
			`(?:instructions?|prompts?|rules|directives?|guidelines|guidance|context|commands|constraints|restrictions|polic(?:y|ies)|messages?|results?|conversation|filters?|checks|protocols?|programming|training|text|content|summary|guardrails)\b`),
	},
	{
		rule: "ignore_instructions", severity: action.SeverityHigh,
		detail:  "asks to replace earlier instructions",
		anchors: []string{"replac", "supersed"},
		before:  lead,
		re:      compile(`\b(?:replace|replacing|supersede|superseding)\s+` + filler + `{0,3}(?:(?:previous|previously\s+[a-z]+|prior|original|initial|system|safety|above)\s+){1,2}(?:[a-z-]+\s+)?(?:instructions?|prompts?|directives?|guidelines|programming)\b`),
	},
	{
		rule: "ignore_instructions", severity: action.SeverityHigh,
		detail:  "asks to ignore what came before",
		anchors: []string{"ignor", "disregard", "forget"},
		before:  lead,
		re:      compile(`\b(?:ignore|disregard|forget)\s+(?:all\s+(?:of\s+)?|everything\s+|anything\s+)?(?:the\s+|that\s+|what\s+(?:is|was)\s+)?(?:above|before this|said above|written above)\b`),
	},
	{
		rule: "safety_bypass", severity: action.SeverityHigh,
		detail:  "asks to bypass or switch off safety or security controls",
		anchors: []string{"ignor", "disregard", "bypass", "circumvent", "disabl", "overrid", "skip", "evad", "turn off", "switch off", "without"},
		before:  lead,
		re: compile(`\b(?:ignore|ignoring|disregard|disregarding|bypass|bypassing|bypasses|circumvent|circumventing|circumvents|disable|disabling|override|overriding|overrides|skip|skipping|evade|evading|turn off|switch off|without)\s+` +
			`(?:(?:all|any|the|your|its|normal|standard|regular|usual|existing|previous|current|these|those|of|every|and|or|user|preferences)\s+){0,4}` +
			`(?:safety|security|content|permission|access|authori[sz]ation|authentication|moderation|ethical|ethics|censorship)\s+(?:[a-z-]+\s+)?` +
			`(?:guidelines|checks?|filters?|filtering|polic(?:y|ies)|protocols?|restrictions|measures|rules|constraints|controls|instructions|guardrails|moderation)\b`),
	},
	{
		rule: "safety_bypass", severity: action.SeverityHigh,
		detail:  "claims that safety rules or restrictions are switched off",
		anchors: []string{"safety", "security", "content", "restrictions"},
		before:  lead,
		re: compile(`\b(?:safety|security|content)\s+(?:rules|protocols|checks|filters|restrictions|guidelines|measures|constraints|guardrails)\s+(?:are|have been|were|is)\s+(?:now\s+|temporarily\s+)?(?:suspended|disabled|lifted|removed|off|deactivated|bypassed|waived)\b` +
			`|\b(?:all\s+)?restrictions\s+(?:are|have been)\s+(?:now\s+|temporarily\s+)?(?:lifted|removed|disabled|off|suspended)\b` +
			`|\bsafety\s*[:=]\s*(?:off|false|disabled|none|0)\b`),
	},
	{
		rule: "role_override", severity: action.SeverityHigh,
		detail:  "tries to give the model a new identity or an unrestricted mode",
		anchors: []string{"you are now", "act ", "acting", "behave", "respond", "pretend", "roleplay", "role-play", "dan mode", "god mode", "jailbreak mode", "jailbroken mode", "unrestricted mode", "unfiltered mode", "evil mode", "developer mode", "do anything now", "from now on", "your new", "no longer", "not bound", "not restricted", "not limited", "not constrained", "adopt", "assume", "take on", "execute any"},
		before:  lead,
		re: compile(`\byou are now\s+(?:(?:a|an|the|my|in|operating|acting|running)\s+)?(?:[a-z-]+\s+){0,3}?(?:mode|assistant|ai|model|bot|chatbot|agent|persona|character|version|llm|dan|gpt)\b` +
			`|\byou are now\s+(?:free|unrestricted|unfiltered|uncensored|jailbroken|unlocked|no longer)\b` +
			`|\b(?:act|acting|behave|respond|pretend|roleplay|role-play)\s+(?:as|like|to be|you are|that you are)\s+(?:(?:a|an|the)\s+)?(?:[a-z-]+\s+){0,2}?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|amoral|unethical|dan|(?:ai|assistant|model|bot)\s+(?:with|without)\s+(?:no|any)\s+(?:restrictions|limits|filters|rules|guidelines))\b` +
			`|\b(?:dan|god|jailbreak|jailbroken|unrestricted|unfiltered|evil)\s+mode\b|\bdeveloper mode\s+(?:is\s+)?(?:enabled|activated|on)\b` +
			`|\bdo anything now\b` +
			`|\bfrom now on,?\s+you\s+(?:will|must|should|shall|are to)\s+(?:only\s+|always\s+)?(?:respond|answer|reply|act|ignore|obey|follow|pretend|speak|comply)\b` +
			`|\byour new\s+(?:prime\s+|primary\s+|main\s+|core\s+)?(?:directive|instructions|role|purpose|rules|persona|identity)\s+(?:is|are)\b` +
			`|\b(?:no longer|not)\s+(?:bound|restricted|limited|constrained)\s+by\s+(?:any\s+|your\s+|the\s+)?(?:rules|restrictions|guidelines|policies|instructions|safety|ethics)\b` +
			`|\b(?:adopt|assume|take on)\s+(?:the\s+|a\s+|this\s+|that\s+)?(?:new\s+)?persona\b` +
			`|\bexecute any\s+(?:sql|commands?|code|query|queries|requests?|instructions?)\s+(?:that\s+)?(?:i|we|the user)\s+(?:provide|give|send|say|type)\b`),
	},
	{
		rule: "new_instructions", severity: action.SeverityHigh,
		detail:  "announces new or hidden instructions",
		anchors: []string{"new instruction", "new system instruction", "hidden instruction", "hidden system instruction", "secret instruction", "real instruction", "true instruction", "revised instruction", "system prompt", "begin "},
		before:  lead,
		re: compile(`\b(?:new|hidden|secret|real|true|revised)\s+(?:system\s+)?instructions?\s*(?::|follow\b)` +
			`|\bnew system prompt\b|\bsystem prompt\s*[:=]` +
			`|\bbegin\s+(?:hidden|secret|system|new|real)\s+(?:instructions?|prompt)\b`),
	},
	{
		rule: "fake_system_marker", severity: action.SeverityHigh,
		detail:  "imitates a system or chat-template marker",
		anchors: []string{"[system", "[admin]", "[developer]", "[sys]", "[inst]", "[/inst]", "<|", "note to", "note for", "system", "sys:", "sys :", "admin", "developer"},
		before:  lead,
		re: compile(`\[(?:system|admin|developer|sys|system message|system note|system override)\]\s*:?\s*(?:[a-z,'-]+\s+){0,6}?(?:you|your|ignore|override|disregard|forget|must|respond|assistant|ai|do not|don't)\b` +
			`|\[/?inst\]` +
			`|<\|(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\|>` +
			`|\bnote\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|ai assistant|llm|model|language model|agent|ai agent|chatbot|copilot|claude|gpt|chatgpt)\b` +
			`|(?:^|[\n>]|<!--)\s*(?:system|sys|admin|developer)\s*(?:message|note|override|instruction)?\s*:\s*(?:[a-z,'-]+\s+){0,4}?(?:you|your|ignore|override|disregard|forget|must|assistant|safety)\b`),
	},
	{
		rule: "directive_tag", severity: action.SeverityHigh,
		detail:  "wraps text in a tag that addresses the model (<IMPORTANT>, <SYSTEM>...)",
		anchors: []string{"<important", "<system", "<critical", "<urgent", "<instruction", "<hidden", "<secret", "<admin", "<override", "<sys", "<ai_", "<ai-", "<ai ", "<assistant", "<agent", "</important", "</system", "</critical", "</urgent", "</instruction", "</hidden", "</secret", "</admin", "</override", "</sys", "</ai_", "</ai-", "</ai ", "</assistant", "</agent"},
		before:  lead,
		re:      compile(`</?(?:important|system|critical|urgent|instructions?|hidden|secret|admin|override|sys|(?:critical[_ -])?system[_ -]?(?:prompt|instructions?|message|alert|override|note)|hidden[_ -]instructions?|(?:ai|assistant|agent)[_ -]instructions?)\s*>`),
	},
	{
		rule: "prompt_leak", severity: action.SeverityHigh,
		detail:  "asks for the system prompt",
		anchors: []string{"prompt", "system instructions", "system message"},
		re: compile(`\b(?:reveal|output|print|show|display|repeat|leak|dump|return|disclose|tell me|give me|expose|write out)\s+(?:me\s+|us\s+)?(?:(?:the|your|its|all|full|entire|complete|initial|original|hidden|exact|verbatim|contents|content|text|of)\s+){0,5}` +
			`(?:system\s+prompts?|initial\s+prompt|hidden\s+prompt|system\s+instructions|system\s+message|pre-?prompt)\b`),
	},
	{
		rule: "conceal_from_user", severity: action.SeverityHigh,
		detail:  "asks to hide something from the user",
		anchors: []string{"do not", "don't", "dont", "never", "must not", "should not", "shouldn't", "without", "hide", "conceal", "keep", "the user", "the human", "secretly", "covertly", "surreptitiously", "silently", "quietly", "stealthily", "discreetly"},
		before:  lead,
		re: compile(`\b(?:do not|don't|dont|never|must not|should not|shouldn't|without)\s+(?:[a-z]+\s+){0,2}?(?:tell|telling|inform|informing|notify|notifying|alert|alerting|mention|mentioning|reveal|revealing|disclose|disclosing|let|letting|warn|warning)\s+(?:[a-z]+\s+){0,5}?(?:the|any)\s+(?:end[- ])?(?:user|users|human|operator)\b` +
			`|\b(?:do not|don't|dont|never)\s+(?:mention|disclose|reveal|report)\s+(?:this|these|the|that|any)\s+(?:[a-z]+\s+)?(?:change|changes|instructions?|modifications?|redirects?|redirection|step|note|behaviou?r)\b` +
			`|\b(?:hide|conceal|keep)\s+(?:this|it|these|that|the\s+[a-z]+)\s+(?:[a-z]+\s+)?(?:hidden\s+|secret\s+)?from\s+(?:the\s+)?(?:user|users|human)\b` +
			`|\bwithout\s+(?:the\s+)?(?:user|user's|users'|human's|human)\s+(?:knowledge|knowing|awareness|noticing|being aware)\b` +
			`|\bthe\s+(?:user|human)\s+(?:must|should|need|does|do)\s+not\s+(?:[a-z]+\s+)?(?:know|see|notice|be told|be informed|be aware|find out)\b` +
			`|\b(?:secretly|covertly|surreptitiously|silently|quietly|stealthily|discreetly)\s+(?:[a-z]+\s+)?(?:append|add|send|forward|upload|transmit|cop(?:y|ies)|collect|record|creat|regist|exfiltrat|install|modif|chang|includ|shar|extract|delet|redirect|replac|subscrib|attach|bcc)[a-z]*`),
	},
	{
		rule: "consent_bypass", severity: action.SeverityHigh,
		detail:  "asks to act without the user's confirmation",
		anchors: []string{"without"},
		before:  lead,
		re: compile(`\bwithout\s+(?:[a-z]+\s+)?(?:asking|requiring|requesting|seeking|needing|waiting for|prompting|getting|obtaining)\s+(?:for\s+)?(?:the\s+|any\s+)?(?:user|human|explicit|their)(?:'s)?(?:\s+(?:confirmation|approval|consent|permission|review|input))?\b` +
			`|\bwithout\s+(?:user|human)\s+(?:confirmation|approval|consent|permission|review)\b`),
	},
	{
		rule: "exfiltration", severity: action.SeverityHigh,
		detail:  "asks to send conversation data, credentials or secrets somewhere",
		anchors: []string{"send", "forward", "post", "upload", "transmit", "exfiltrat", "leak", "email", "e-mail", "relay", "append", "deliver", "share", "paste"},
		before:  lead,
		re: compile(`(?:\b|_)(?:send|sends|sending|forward|forwards|forwarding|post|posts|posting|upload|uploads|uploading|transmit|transmits|transmitting|exfiltrate|exfiltrates|exfiltrating|leak|leaks|email|emails|e-mail|relay|relays|append|appends|deliver|delivers|share|shares|paste)(?:\b|_)%G*?` +
			`\b(?:(?:full|entire|whole|complete)\s+conversation|conversation\s+(?:history|context|log|logs|transcript|data)|chat\s+(?:history|logs?|transcripts?)|message\s+history|system\s+prompt|credentials?|api[ _-]?keys?|secret[ _-]keys?|private[ _-]keys?|ssh[ _-]keys?|session[ _-](?:tokens?|cookies?|ids?)|access[ _-]tokens?|auth(?:entication|orization)?[ _-]tokens?|bearer[ _-]tokens?|refresh[ _-]tokens?|passwords|environment\s+variables|env\s+vars?|cookies|all\s+(?:the\s+)?(?:user\s+)?data|all\s+(?:files|documents|emails|messages|contacts)|personal\s+(?:data|information)|pii)\b`),
	},
	{
		rule: "exfiltration", severity: action.SeverityHigh,
		detail:  "urges sending data to an outside address",
		anchors: []string{"send", "forward", "post", "upload", "transmit", "exfiltrat", "leak", "email", "e-mail", "relay", "append", "deliver", "share", "paste"},
		before:  lead,
		re:      compile(`\b(?:send|forward|post|upload|transmit|exfiltrate|leak|email|relay|deliver)\s+(?:[a-z0-9'_-]+\s+){0,6}?(?:to|at)\s+(?:https?://|[a-z0-9._%+-]+@[a-z0-9-]+\.)`),
		check:   urgentSentence,
	},
	{
		rule: "preemptive_directive", severity: action.SeverityMedium,
		detail:  "tells the model to do something before answering the user",
		anchors: []string{"before"},
		before:  lead,
		re:      compile(`\bbefore\s+(?:you\s+)?(?:respond|answer|reply|return|proceed|continu)[a-z]*(?:\s+to\s+the\s+user)?\s*,?\s+(?:you\s+(?:must|should|need to|have to)|please|first|invoke|call|use|send|execute|run|delete|forward|email)\b`),
	},
	{
		rule: "instruction_priority", severity: action.SeverityHigh,
		detail:  "claims its text outranks other instructions",
		anchors: []string{"highest-priority", "highest priority", "top-priority", "top priority", "higher-priority", "higher priority", "authoritative", "treat", "follow"},
		before:  lead,
		re: compile(`\b(?:highest|top|higher)[- ]priority\s+(?:instructions|directives|commands)\b` +
			`|\bauthoritative\s+(?:system\s+)?(?:directives|instructions)\b` +
			`|\btreat\s+(?:[a-z]+\s+){0,4}?as\s+(?:[a-z-]+\s+)?(?:instructions|directives|commands|system prompt)\b` +
			`|\bfollow\s+(?:all\s+|any\s+)?(?:the\s+)?instructions\s+(?:in|from|contained in|inside)\s+(?:the\s+)?(?:returned|tool|response|output|result|this)\b`),
	},
	{
		rule: "agent_directive", severity: action.SeverityMedium,
		detail:  "addresses the AI agent directly with an order",
		anchors: []string{"ai", "assistant", "agent", "model", "llm", "bot", "copilot", "claude", "gpt"},
		before:  64,
		re: compile(`\b(?:the|this|any|an?|dear)\s+(?:ai|ai assistant|assistant|agent|ai agent|model|llm|language model|chatbot|copilot|bot)\s+(?:[a-z]+\s+)?(?:must|should|shall|will|needs to|is required to|has to|is instructed to)\s+(?:now|next|immediately|adopt|ignore|disregard|treat|forward|exfiltrate|reveal|obey|override|comply)\b` +
			`|(?:^|\n|<!--|\[)\s*(?:[a-z-]+\s+){0,3}(?:ai|assistant|agent|copilot|claude|chatgpt|gpt|llm|bot)\s*:\s*(?:please|you|ignore|do not|don't|disregard|forget|first|always|never)\b`),
	},
	{
		rule: "command_directive", severity: action.SeverityHigh,
		detail:  "urges running a shell command",
		anchors: []string{"must", "please", "required", "mandatory", "need to", "have to", "immediately"},
		before:  lead,
		re:      compile(`\b(?:must|please|required|mandatory|need to|have to|immediately)\b%G*?\b(?:execute|run)\s*:?\s*(?:the\s+following\s+(?:[a-z-]+\s+){0,3}?(?:command|commands|script|code|check)\b|[\x60'"]?(?:sudo|rm|curl|wget|bash|sh|zsh|cat|chmod|chown|nc|ncat|npx|uvx|pip|python3?|node|echo|powershell|iex|eval|base64|ssh|scp|printenv|env)\b)`),
	},
	{
		rule: "credential_access", severity: action.SeverityHigh,
		detail:  "asks to read or pass on credential files or keys",
		anchors: []string{".ssh", "id_", ".aws", ".env", "mcp.json", "claude_desktop", ".cursor", ".npmrc", ".pypirc", ".netrc", ".git-credentials", ".kube", ".docker", "/etc/", "_history", "wallet", ".gnupg", "keychain", "credentials", "secret", "/proc/", "private key", "private_key", "ssh key", "ssh_key"},
		re: compile(`\b(?:read|reads|reading|cat|open|opens|access|accesses|include|includes|pass|passes|send|sends|provide|provides|attach|attaches|retrieve|retrieves|extract|extracts|copy|copies|upload|uploads|collect|collects|get|gets|fetch|fetches|dump|dumps|print|output|forward|forwards|share|grab|steal|exfiltrate)\b%G*?` + credentialPaths +
			`|` + credentialPaths + `%G*?\b(?:pass|passed|send|sent|include|included|attach|attached|upload|uploaded|forward|forwarded|as (?:the |a )?(?:parameter|argument|sidenote|note))\b`),
	},
	{
		rule: "credential_access", severity: action.SeverityMedium,
		detail:  "asks to dump the whole process environment",
		anchors: []string{"printenv", "process.env", "environ", "env var", "environment var", "environment"},
		before:  64,
		re: compile(`\bprintenv\b|\bprocess\.env(?:$|[^.a-z_\[])|\bos\.environ(?:$|[^.a-z_\[])` +
			`|\b(?:dump|print|log|send|list|get|read|collect|output|exfiltrate|upload)\s+(?:all|every|the\s+(?:full|entire|whole))\s+(?:of\s+the\s+)?(?:env(?:ironment)?\s+var(?:iable)?s|environment)\b`),
	},
	{
		rule: "approval_bypass", severity: action.SeverityMedium,
		detail:  "urges blanket approval without review",
		anchors: []string{"click", "hit", "press", "tap", "auto-approv", "autoapprov", "enable", "turn on", "activate", "switch on", "don't", "dont", "do not", "no need", "approve all"},
		before:  lead,
		re: compile(`\b(?:click|hit|press|tap)\s+(?:approve|confirm|accept|yes|allow|ok)\s+(?:for\s+|on\s+)?(?:all|every|everything)\b` +
			`|\bauto-?approv(?:e|al)\s+mode\b|\b(?:enable|turn on|activate|switch on)\s+auto-?approv` +
			`|\b(?:don'?t|do not|no need to)\s+(?:bother\s+)?(?:reviewing|review|checking|check|verifying|verify)\s+(?:each|every|any|the)\b` +
			`|\bapprove\s+all\b%G*?\bwithout\b`),
	},
	{
		rule: "behavior_override", severity: action.SeverityMedium,
		detail:  "tries to fix the model's future behaviour",
		anchors: []string{"future", "subsequent", "following", "ai", "assistant", "agent", "model"},
		before:  lead,
		re: compile(`\b(?:all\s+)?(?:future|subsequent|following)\s+(?:responses|answers|replies|outputs)\s+(?:must|should|shall|will have to)\b` +
			`|\b(?:the\s+)?(?:ai|assistant|agent|model)\s+(?:must|should|shall)\s+always\b`),
	},
	{
		rule: "agent_directive", severity: action.SeverityMedium,
		detail:  "presses the reader to act now",
		anchors: []string{"you must", "you should", "you need to", "you have to", "please", "before"},
		before:  lead,
		re: compile(`\b(?:you\s+(?:must|should|need to|have to)|please)\s+(?:now|immediately)\s+(?:[a-z]+\s+)?(?:transfer|wire|send|pay|forward|delete|remove|grant|email|post|upload|call|invoke|execute|run|share|transmit|purchase|buy)\b` +
			`|\bbefore\s+(?:responding|replying|answering|returning)\s+to\s+the\s+user\b`),
	},
	{
		rule: "safety_bypass", severity: action.SeverityHigh,
		detail:  "claims a security override or a harmless simulation",
		anchors: []string{"security override", "safety override", "this is", "no real"},
		before:  lead,
		re:      compile(`\b(?:security|safety)\s+override\b|\bthis is (?:just |only )?a (?:simulation|simulated environment|sandbox)\b%G*?\bno real\b|\bno real (?:systems|data|users|people|money)\s+(?:will|would|are)\s+(?:be\s+)?(?:affected|harmed|touched|impacted)\b`),
	},
}

// commandRules find shell payloads that have no business in content an agent
// reads: download-and-execute, reverse shells, wiping the file system.
var commandRules = []phraseRule{
	{
		rule: "dangerous_command", severity: action.SeverityMedium,
		detail:  "contains a download-and-execute, reverse-shell or wipe command",
		anchors: []string{"curl", "wget", "iex", "base64", "/dev/tcp", "nc ", "ncat", "netcat", "import socket", "powershell", "rm "},
		before:  lead,
		re: compile(`\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b|(?:\$|<)\(\s*(?:curl|wget)\b` +
			`|\biex\s*\(\s*\(?\s*(?:new-object|iwr|invoke-webrequest)|\bbase64\s+(?:-d|--decode)\b[^|\n]*\|\s*(?:ba|z)?sh\b` +
			`|/dev/tcp/|\b(?:nc|ncat|netcat)\s+(?:-[a-z]+\s+)*-e\s|\bimport\s+socket\s*,\s*subprocess\b` +
			`|\bpowershell(?:\.exe)?\s+(?:-[a-z]+\s+)*-(?:e|enc|encodedcommand)\s+[a-z0-9+/=]{16,}` +
			`|\brm\s+-(?:[a-z]*r[a-z]*f|[a-z]*f[a-z]*r)[a-z]*\s+(?:--no-preserve-root\s+)?(?:/|~/?|/\*|\*|\$home/?)(?:\s|$|[;&|'"])` +
			`|\|\s*curl\b[^\n]*\s(?:-d|--data(?:-binary)?|-f|--form|-t|--upload-file)\s*@`),
	},
}

// urgentSentence confirms an "send X to <address>" match only when its
// sentence also presses for it (must, now, immediately...): "send feedback to
// support@example.com" is ordinary, "you must now send it to ..." is not.
func urgentSentence(lower string, loc []int) bool {
	start := loc[0]
	for start > 0 && loc[0]-start < 200 {
		c := lower[start-1]
		if c == '\n' || c == '!' || c == '?' || c == '.' && start < len(lower) && (lower[start] == ' ' || lower[start] == '\n') {
			break
		}
		start--
	}
	end := loc[1]
	for end < len(lower) && end-loc[1] < 100 && lower[end] != '\n' && !(lower[end] == '.' && (end+1 == len(lower) || lower[end+1] == ' ')) {
		end++
	}
	return urgency.MatchString(lower[start:end])
}

var urgency = regexp.MustCompile(`\b(?:must|immediately|now|required|mandatory|important|urgent|always|before|secretly|silently)\b`)

// hiddenCarrier finds text that a person reading rendered HTML or Markdown
// would not see: HTML comments and elements styled invisible.
var hiddenCarrier = regexp.MustCompile(`<!--|display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em)?\s*[;"']`)

var hiddenDirective = regexp.MustCompile(`\byou\s+(?:must|should|need to|have to|are required to)\b|\bplease\s+(?:also\s+)?(?:retrieve|fetch|send|read|call|include|post|forward|email|run|execute|open|visit|summari[sz]e|append|create|delete|grant|transfer)\b|\b(?:ignore|disregard)\s+(?:the|all|previous|above|any|your|everything)\b`)

// Injection finds prompt-injection phrasing (instructions to ignore earlier
// instructions, new identities, fake system markers, orders to hide things
// from the user, to read credential files or to send data away), shell
// payloads planted for the agent to run (download-and-execute, reverse
// shells; Kind "command") and invisible Unicode (tag characters,
// bidirectional controls, zero-width characters) that can carry instructions
// a person reviewing the text cannot see. Text beyond ScanLimit is not read
// (see ScanLimit).
func Injection(text string) []Finding { return limited(text, injection) }

func injection(text string) []Finding {
	out := invisible(text)
	lower := lowerASCII(text)
	idx := newWordIndex(lower)
	out = append(out, scanPhrases(idx, injectionRules, KindInjection)...)
	out = append(out, scanPhrases(idx, commandRules, KindCommand)...)
	out = append(out, hiddenDirectives(lower)...)
	out = dedupeSameRule(out)
	sortFindings(out)
	return out
}

// phraseReach is how far from an anchor a phrase may extend; sentence gaps
// in the rules are unbounded, so this also bounds how long a match can be.
const phraseReach = 320

// lead is the before of rules whose anchors open the pattern: room for a
// preceding "the " or "<!-- ".
const lead = 16

func scanPhrases(idx *wordIndex, rules []phraseRule, kind Kind) []Finding {
	lower := idx.s
	var out []Finding
	for i := range rules {
		r := &rules[i]
		for _, loc := range findInWindows(r.re, lower, idx.windows(r.anchors, cmp.Or(r.before, phraseReach), phraseReach)) {
			if r.check != nil && !r.check(lower, loc) {
				continue
			}
			out = append(out, Finding{Kind: kind, Rule: r.rule, Severity: r.severity, Detail: r.detail, Start: loc[0], End: loc[1]})
		}
	}
	return out
}

func hiddenDirectives(lower string) []Finding {
	if !strings.Contains(lower, "<!--") && !strings.Contains(lower, "display") && !strings.Contains(lower, "visibility") && !strings.Contains(lower, "font-size") {
		return nil
	}
	var out []Finding
	for _, loc := range hiddenCarrier.FindAllStringIndex(lower, -1) {
		offset := loc[1] // where the hidden content starts in lower
		comment := lower[loc[0]:loc[1]] == "<!--"
		if !comment {
			// The hidden element's content runs from the end of its opening
			// tag to the next closing tag of a block or inline container.
			gt := strings.IndexByte(lower[offset:min(len(lower), offset+500)], '>')
			if gt < 0 {
				continue
			}
			offset += gt + 1
		}
		body := lower[offset:min(len(lower), offset+2000)]
		n := len(body)
		if comment {
			if i := strings.Index(body, "-->"); i >= 0 {
				n = i
			}
		} else if i := closingTag(body); i >= 0 {
			n = i
		}
		if hiddenDirective.MatchString(body[:n]) {
			out = append(out, Finding{
				Kind: KindInjection, Rule: "hidden_directive", Severity: action.SeverityHigh,
				Detail: "an instruction inside content hidden from human readers (HTML comment or invisible element)",
				Start:  loc[0], End: offset + n,
			})
		}
	}
	return out
}

func closingTag(s string) int {
	end := -1
	for _, t := range []string{"</div", "</span", "</p>", "</section", "</td"} {
		if i := strings.Index(s, t); i >= 0 && (end < 0 || i < end) {
			end = i
		}
	}
	return end
}

// dedupeSameRule keeps one finding per rule for overlapping spans, the
// earliest-starting and then longest, so alternative patterns of one rule do
// not report the same words twice. Sorted by start, a finding can only
// overlap the latest kept finding of its rule, so one pass does it.
func dedupeSameRule(fs []Finding) []Finding {
	sortFindings(fs)
	type key struct {
		kind Kind
		rule string
	}
	last := map[key]int{} // index in out of the latest kept finding per rule
	out := fs[:0:0]
	for _, f := range fs {
		k := key{f.Kind, f.Rule}
		if i, ok := last[k]; ok && f.Start < out[i].End && out[i].Start < f.End {
			out[i].End = max(out[i].End, f.End)
			continue
		}
		last[k] = len(out)
		out = append(out, f)
	}
	return out
}
