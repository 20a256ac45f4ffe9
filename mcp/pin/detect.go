package pin

import "github.com/agentgov/agentgov/detect"

// Detectors is the Detector over agentgov's own content detectors.
func Detectors() Detector { return detectors{} }

type detectors struct{}

func (detectors) ToolPoisoning(name, description string, inputSchema any) []Finding {
	return fromDetect(detect.ToolPoisoning(name, description, inputSchema))
}

func (detectors) Shadowing(servers map[string][]string) []Finding {
	return fromDetect(detect.Shadowing(servers))
}

func (detectors) Sensitive(text string) []Finding {
	return fromDetect(append(detect.Secrets(text), detect.PII(text)...))
}

func (detectors) Redact(text string, findings []Finding) string {
	fs := make([]detect.Finding, len(findings))
	for i, f := range findings {
		fs[i] = detect.Finding{Kind: detect.Kind(f.Kind), Rule: f.Rule, Severity: f.Severity, Detail: f.Detail, Start: f.Start, End: f.End}
	}
	return detect.Redact(text, fs)
}

func fromDetect(fs []detect.Finding) []Finding {
	if len(fs) == 0 {
		return nil
	}
	out := make([]Finding, len(fs))
	for i, f := range fs {
		out[i] = Finding{Kind: string(f.Kind), Rule: f.Rule, Severity: f.Severity, Detail: f.Detail, Start: f.Start, End: f.End}
	}
	return out
}
