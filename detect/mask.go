package detect

// Mask returns text with every secret and every piece of personal data that
// Secrets and PII find replaced by "[REDACTED:<rule>]", and what lies beyond
// ScanLimit by "[REDACTED:unscanned]". It is what may be kept of a text that
// an agent or an upstream wrote: the audit log and every other store write
// free text only through it. Text with nothing to mask is returned as it is,
// without copying.
func Mask(text string) string {
	head, rest := scanLimited(text)
	fs := append(secrets(head), pii(head)...)
	if rest != nil {
		fs = append(fs, *rest)
	}
	if len(fs) == 0 {
		return text
	}
	return Redact(text, fs)
}
