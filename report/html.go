package report

import (
	"encoding/json"
	"html/template"
	"io"
)

// page is one self-contained HTML page: styles inline, no script, no
// request to anywhere, so that it can be archived with the evidence.
var page = template.Must(template.New("report").Funcs(template.FuncMap{"json": jsonText}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #bbb;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#eee}
.gap,.unmet{color:#a00;font-weight:bold}
.ok{color:#060}
pre{background:#f6f6f6;padding:.8rem;overflow-x:auto}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p>Generated {{.Ev.GeneratedAt.Format "2006-01-02 15:04:05 MST"}} from the audit log's first {{.Ev.Size}} entries{{if .Ev.Since}}, counting decisions since {{.Ev.Since.Format "2006-01-02 15:04:05 MST"}}{{end}}.</p>
<h2>Summary</h2>
<table>
<tr><th scope="row">Decisions</th><td>{{.Ev.Totals.Decisions}}</td></tr>
<tr><th scope="row">Allowed</th><td>{{.Ev.Totals.Allow}}</td></tr>
<tr><th scope="row">Denied</th><td>{{.Ev.Totals.Deny}}</td></tr>
<tr><th scope="row">Sent for approval</th><td>{{.Ev.Totals.RequireApproval}}</td></tr>
<tr><th scope="row">Flagged</th><td>{{.Ev.Totals.Flagged}}</td></tr>
</table>
{{if .Risks}}
<h2>OWASP Top 10 for Agentic Applications</h2>
<table>
<thead><tr><th scope="col">Risk</th><th scope="col">Controls in force</th><th scope="col">Denied</th><th scope="col">Sent for approval</th><th scope="col">Flagged</th><th scope="col">Status</th></tr></thead>
<tbody>
{{range .Risks}}<tr><th scope="row">{{.ID}} {{.Risk.Title}}</th><td>{{range $i, $c := .Risk.Controls}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}</td><td>{{.Risk.Decisions.Deny}}</td><td>{{.Risk.Decisions.RequireApproval}}</td><td>{{.Risk.Decisions.Flagged}}</td><td>{{if .Risk.Gap}}<span class="gap">gap</span>{{else}}<span class="ok">covered</span>{{end}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
{{if .Requirements}}
<h2>Requirements</h2>
<table>
<thead><tr><th scope="col">Requirement</th><th scope="col">Evidence</th><th scope="col">Status</th></tr></thead>
<tbody>
{{range .Requirements}}<tr><th scope="row">{{.ID}} {{.Title}}</th><td><p>{{.Basis}}</p><pre>{{json .Evidence}}</pre></td><td>{{if .Met}}<span class="ok">evidenced</span>{{else}}<span class="unmet">not evidenced</span>{{end}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
<h2>Policy reviews due</h2>
{{if .Ev.ReviewOverdue}}<table>
<thead><tr><th scope="col">Document</th><th scope="col">Frequency</th><th scope="col">Last reviewed</th><th scope="col">Due</th><th scope="col">Approvers</th></tr></thead>
<tbody>
{{range .Ev.ReviewOverdue}}<tr><td>{{.Document}}</td><td>{{.Frequency}}</td><td>{{if .Reviewed}}{{.Reviewed}}{{else}}never{{end}}</td><td>{{if .Reviewed}}{{.Due.Format "2006-01-02"}}{{else}}now{{end}}</td><td>{{range $i, $a := .Approvers}}{{if $i}}, {{end}}{{$a}}{{end}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p>None.</p>{{end}}
<h2>Policy</h2>
<p>Controls read from <code>{{.Ev.Policies.Source}}</code>, digest <code>{{.Ev.Policies.Controls}}</code>{{if .Ev.Policies.ControlsBundle}} (bundle <code>{{.Ev.Policies.ControlsBundle}}</code>){{end}}{{if not .Ev.Policies.Matches}}: <strong>not the set the log last loaded</strong>{{end}}.</p>
<p>Policy sets that decided in the period:</p>
<ul>{{range .Ev.Policies.InLog}}<li><code>{{.}}</code></li>{{end}}</ul>
<h2>Signed checkpoint</h2>
<p>The report counts the entries this checkpoint covers. Check it with the log's public key (<code>agentgov audit verify --checkpoint FILE --pub KEY</code>).</p>
<pre>{{.Ev.Checkpoint}}</pre>
<p>Public key:</p>
<pre>{{.Ev.PublicKey}}</pre>
</main>
</body>
</html>
`))

type riskRow struct {
	ID   string
	Risk *Risk
}

type pageData struct {
	Title        string
	Ev           Evidence
	Risks        []riskRow
	Requirements []Requirement
}

// WriteHTML writes the OWASP report as one self-contained page.
func (o *OWASP) WriteHTML(w io.Writer) error {
	d := pageData{Title: "OWASP Agentic Top 10: agentgov controls and evidence", Ev: o.Evidence}
	for _, r := range Risks {
		d.Risks = append(d.Risks, riskRow{r.ID, o.Risks[r.ID]})
	}
	return page.Execute(w, d)
}

// WriteHTML writes the report as one self-contained page.
func (f *Framework) WriteHTML(w io.Writer) error {
	title := map[string]string{
		"eu-ai-act-article-12": "EU AI Act Article 12 record-keeping: agentgov evidence",
		"soc2-cc7":             "SOC 2 CC7 system operations: agentgov evidence",
	}[f.Framework]
	return page.Execute(w, pageData{Title: title, Ev: f.Evidence, Requirements: f.Requirements})
}

func jsonText(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}
