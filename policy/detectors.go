package policy

import (
	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/detect"
)

// detectorFunctions lets conditions use the content detectors:
//
//	has_secret(content)     a credential (private key, cloud or VCS token, ...)
//	has_pii(args_text)      a card number (Luhn-checked), SSN, IBAN, e-mail, phone
//	has_injection(content)  prompt-injection phrasing, hidden Unicode, shell payloads
//
// Each is true when the detector finds something of medium severity or more,
// so that low-confidence hits (an e-mail address) do not block by themselves.
func detectorFunctions() cel.EnvOption {
	fn := func(name string, scan func(string) []detect.Finding) cel.EnvOption {
		return cel.Function(name, cel.Overload(name+"_string", []*cel.Type{cel.StringType}, cel.BoolType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				s, ok := v.Value().(string)
				if !ok {
					return types.NewErr("%s: want a string", name)
				}
				return types.Bool(significant(scan(s)))
			})))
	}
	return cel.Lib(detectorLib{[]cel.EnvOption{
		fn("has_secret", detect.Secrets),
		fn("has_pii", detect.PII),
		fn("has_injection", detect.Injection),
	}})
}

type detectorLib struct{ opts []cel.EnvOption }

func (l detectorLib) CompileOptions() []cel.EnvOption     { return l.opts }
func (l detectorLib) ProgramOptions() []cel.ProgramOption { return nil }

func significant(fs []detect.Finding) bool {
	for _, f := range fs {
		if f.Severity.Rank() >= action.SeverityMedium.Rank() {
			return true
		}
	}
	return false
}
