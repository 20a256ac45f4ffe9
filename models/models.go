// Package models is the model catalogue: which language models agentgov knows,
// who serves them, which price tier they belong to and what a million tokens
// cost. Policies decide model access by tier or name at pre_model_call, and the
// model proxy prices the provider's own token counts with it, so that budgets
// are settled in the same currency whatever the model.
//
// Prices are integers (micro-dollars per million tokens) so that adding up many
// small calls never drifts the way float sums do. A catalogue is immutable once
// built; override the shipped one with a user file through Load.
package models

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed catalog.yaml
var shippedYAML []byte

// Version is the only catalogue format version understood.
const Version = "agentgov/v1"

// Model is one entry of the catalogue.
type Model struct {
	Name     string   `json:"name"`
	Provider string   `json:"provider"`
	Tier     string   `json:"tier"`
	Aliases  []string `json:"aliases,omitempty"`
	// InputPerMTok and OutputPerMTok are the price of one million tokens in
	// micro-dollars (1 USD = 1,000,000).
	InputPerMTok  int64 `json:"input_micro_usd_per_mtok"`
	OutputPerMTok int64 `json:"output_micro_usd_per_mtok"`
	// MaxOutputTokens is the most output tokens the provider writes (and
	// bills) for one answer when the request sets no cap; 0 when the
	// catalogue does not know it. The model proxy reserves budget for it.
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// Reasoning marks a model that thinks before it answers: its hidden
	// reasoning tokens are billed as output, and OpenAI caps them, with
	// the answer, by max_completion_tokens (it refuses max_tokens).
	Reasoning bool `json:"reasoning,omitempty"`
	// Unknown marks the stand-in returned by Resolve for a model the catalogue
	// does not list.
	Unknown bool `json:"unknown,omitempty"`
}

// Cost is what in input and out output tokens of m cost, in micro-dollars,
// rounded up: a budget is never charged less than the provider would bill.
// Negative counts count as zero; a result beyond int64 saturates.
func (m Model) Cost(in, out int64) int64 {
	return satAdd(perMillion(in, m.InputPerMTok), perMillion(out, m.OutputPerMTok))
}

func perMillion(tokens, price int64) int64 {
	if tokens <= 0 || price <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(price))
	const million = 1_000_000
	if hi >= million {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, million)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}

// ErrUnknownModel is returned by Resolve for a model that is not in the
// catalogue when the catalogue denies unknown models.
var ErrUnknownModel = errors.New("model is not in the catalogue")

// Catalog is an immutable set of models.
type Catalog struct {
	asOf         string
	tiers        []string
	allowUnknown bool
	unknown      Model // tier and prices applied to models the catalogue does not list
	models       []Model
	byName       map[string]int // names and aliases → index in models
}

// Shipped returns the catalogue compiled into the binary. It is parsed once;
// catalogues are immutable, so every caller can share it.
func Shipped() *Catalog { return shipped() }

var shipped = sync.OnceValue(func() *Catalog {
	c, err := Parse("catalog.yaml", shippedYAML)
	if err != nil {
		panic("models: shipped catalogue is invalid: " + err.Error())
	}
	return c
})

// Load returns the shipped catalogue overridden by the user file at path, or
// the shipped catalogue alone when path is empty.
func Load(path string) (*Catalog, error) {
	if path == "" {
		return Shipped(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model catalogue: %w", err)
	}
	return Shipped().Override(path, data)
}

// Parse builds a catalogue from one YAML document. name is used in errors.
func Parse(name string, data []byte) (*Catalog, error) {
	return (&Catalog{byName: map[string]int{}}).Override(name, data)
}

// Override returns a new catalogue: c with the YAML document data laid over
// it. A model the document names is merged field by field with c's entry of
// that name (so a user file can change one price); a model c lacks must give
// provider, tier and both prices. c itself is unchanged, also on error.
func (c *Catalog) Override(name string, data []byte) (*Catalog, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("%s: version: must be %q, not %q", name, Version, f.Version)
	}
	n := &Catalog{
		asOf:         c.asOf,
		tiers:        slices.Clone(c.tiers),
		allowUnknown: c.allowUnknown,
		unknown:      c.unknown,
		models:       slices.Clone(c.models),
		byName:       map[string]int{},
	}
	if f.AsOf != "" {
		n.asOf = f.AsOf
	}
	if len(f.Tiers) > 0 {
		n.tiers = f.Tiers
	}
	if len(n.tiers) == 0 {
		return nil, fmt.Errorf("%s: tiers: at least one tier is required", name)
	}
	index := map[string]int{}
	for i, m := range n.models {
		index[m.Name] = i
	}
	for _, key := range f.order {
		e := f.Models[key]
		at := fmt.Sprintf("%s:%d: models.%s", name, e.line, key)
		if strings.TrimSpace(key) == "" {
			return nil, fmt.Errorf("%s:%d: models: empty model name", name, e.line)
		}
		m, exists := Model{Name: key}, false
		if i, ok := index[key]; ok {
			m, exists = n.models[i], true
			m.Aliases = slices.Clone(m.Aliases)
		}
		if e.Provider != nil {
			m.Provider = *e.Provider
		}
		if e.Tier != nil {
			m.Tier = *e.Tier
		}
		if e.Input != nil {
			m.InputPerMTok = int64(*e.Input)
		}
		if e.Output != nil {
			m.OutputPerMTok = int64(*e.Output)
		}
		if e.Aliases != nil {
			m.Aliases = e.Aliases
		}
		if e.MaxOutput != nil {
			if *e.MaxOutput < 0 {
				return nil, fmt.Errorf("%s: max_output: must not be negative", at)
			}
			m.MaxOutputTokens = int64(*e.MaxOutput)
		}
		if e.Reasoning != nil {
			m.Reasoning = *e.Reasoning
		}
		if !exists {
			var missing []string
			for _, p := range []struct {
				field string
				given bool
			}{{"provider", e.Provider != nil}, {"tier", e.Tier != nil}, {"input", e.Input != nil}, {"output", e.Output != nil}} {
				if !p.given {
					missing = append(missing, p.field)
				}
			}
			if len(missing) > 0 {
				return nil, fmt.Errorf("%s: a new model needs %s", at, strings.Join(missing, ", "))
			}
			index[key] = len(n.models)
			n.models = append(n.models, m)
		} else {
			n.models[index[key]] = m
		}
		if m.Provider == "" {
			return nil, fmt.Errorf("%s: provider: must not be empty", at)
		}
	}
	if f.UnknownModels != nil {
		u := f.UnknownModels
		switch u.Policy {
		case "allow":
			n.allowUnknown = true
		case "deny":
			n.allowUnknown = false
		default:
			return nil, fmt.Errorf("%s:%d: unknown_models: must be deny or allow (or a mapping with policy, tier, input, output), not %q", name, u.line, u.Policy)
		}
		if u.Tier != "" {
			n.unknown.Tier = u.Tier
		}
		if u.Input != nil {
			n.unknown.InputPerMTok = int64(*u.Input)
		}
		if u.Output != nil {
			n.unknown.OutputPerMTok = int64(*u.Output)
		}
	}
	if err := n.index(name); err != nil {
		return nil, err
	}
	return n, nil
}

// index checks cross-field rules and builds the name table.
func (n *Catalog) index(name string) error {
	tierOK := map[string]bool{}
	for _, t := range n.tiers {
		if t == "" || tierOK[t] {
			return fmt.Errorf("%s: tiers: %q is empty or listed twice", name, t)
		}
		tierOK[t] = true
	}
	slices.SortFunc(n.models, func(a, b Model) int { return strings.Compare(a.Name, b.Name) })
	for i, m := range n.models {
		if !tierOK[m.Tier] {
			return fmt.Errorf("%s: models.%s: tier %q is not one of the tiers (%s)", name, m.Name, m.Tier, strings.Join(n.tiers, ", "))
		}
		for _, k := range append([]string{m.Name}, m.Aliases...) {
			if j, dup := n.byName[k]; dup {
				return fmt.Errorf("%s: models.%s: name %q is already used by models.%s", name, m.Name, k, n.models[j].Name)
			}
			n.byName[k] = i
		}
	}
	// An unknown model is priced like the dearest known one unless the file
	// says otherwise, so letting unknown models through never makes them free.
	if n.unknown.Tier == "" {
		n.unknown.Tier = n.tiers[len(n.tiers)-1]
	}
	if !tierOK[n.unknown.Tier] {
		return fmt.Errorf("%s: unknown_models.tier: %q is not one of the tiers (%s)", name, n.unknown.Tier, strings.Join(n.tiers, ", "))
	}
	if n.unknown.InputPerMTok == 0 && n.unknown.OutputPerMTok == 0 {
		for _, m := range n.models {
			n.unknown.InputPerMTok = max(n.unknown.InputPerMTok, m.InputPerMTok)
			n.unknown.OutputPerMTok = max(n.unknown.OutputPerMTok, m.OutputPerMTok)
		}
	}
	n.unknown.Unknown = true
	return nil
}

var dated = regexp.MustCompile(`-(\d{4}-\d{2}-\d{2}|\d{8})$`)

// Lookup finds a model by name or alias. A dated snapshot name
// ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929") that is not listed
// itself falls back to its undated family, which providers price the same.
func (c *Catalog) Lookup(model string) (Model, bool) {
	if i, ok := c.byName[model]; ok {
		return c.models[i], true
	}
	if loc := dated.FindStringIndex(model); loc != nil {
		if i, ok := c.byName[model[:loc[0]]]; ok {
			return c.models[i], true
		}
	}
	return Model{}, false
}

// Resolve is Lookup with the catalogue's rule for unknown models applied: when
// they are allowed it returns a stand-in with the unknown tier and price (and
// Unknown set); when they are denied, ErrUnknownModel.
func (c *Catalog) Resolve(model string) (Model, error) {
	if m, ok := c.Lookup(model); ok {
		return m, nil
	}
	if !c.allowUnknown {
		return Model{}, fmt.Errorf("%w: %q", ErrUnknownModel, model)
	}
	u := c.unknown
	u.Name = model
	return u, nil
}

// Cost prices a call in micro-dollars. A model the catalogue does not list is
// priced at the unknown-model price, which defaults to the dearest known one.
func (c *Catalog) Cost(model string, in, out int64) (microUSD int64) {
	if m, ok := c.Lookup(model); ok {
		return m.Cost(in, out)
	}
	return c.unknown.Cost(in, out)
}

// AllowUnknown reports whether models absent from the catalogue may be used.
func (c *Catalog) AllowUnknown() bool { return c.allowUnknown }

// Tiers lists the tiers, cheapest first.
func (c *Catalog) Tiers() []string { return slices.Clone(c.tiers) }

// AsOf is the date the catalogue's prices were taken.
func (c *Catalog) AsOf() string { return c.asOf }

// Models lists every model, sorted by name.
func (c *Catalog) Models() []Model {
	out := make([]Model, len(c.models))
	for i, m := range c.models {
		m.Aliases = slices.Clone(m.Aliases)
		out[i] = m
	}
	return out
}

// file is the YAML form of a catalogue (or of an override of one).
type file struct {
	Version       string            `yaml:"version"`
	AsOf          string            `yaml:"as_of"`
	Tiers         []string          `yaml:"tiers"`
	UnknownModels *unknownSpec      `yaml:"unknown_models"`
	Models        map[string]*entry `yaml:"models"`
	order         []string
}

// UnmarshalYAML keeps the models in file order, so that the first error found
// is the first in the file.
func (f *file) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, "", "version", "as_of", "tiers", "unknown_models", "models"); err != nil {
		return err
	}
	type plain file
	if err := n.Decode((*plain)(f)); err != nil {
		return err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "models" {
			continue
		}
		ms := n.Content[i+1]
		for j := 0; j+1 < len(ms.Content); j += 2 {
			key := ms.Content[j].Value
			if f.Models[key] == nil {
				return fmt.Errorf("line %d: models.%s: must be a mapping with provider, tier, input, output", ms.Content[j].Line, key)
			}
			f.Models[key].line = ms.Content[j].Line
			f.order = append(f.order, key)
		}
	}
	return nil
}

type entry struct {
	Provider  *string  `yaml:"provider"`
	Tier      *string  `yaml:"tier"`
	Input     *price   `yaml:"input"`
	Output    *price   `yaml:"output"`
	Aliases   []string `yaml:"aliases"`
	MaxOutput *count   `yaml:"max_output"`
	Reasoning *bool    `yaml:"reasoning"`
	line      int
}

// unknownSpec is either a bare word (deny, allow) or a mapping that also sets
// the tier and price of unknown models.
type unknownSpec struct {
	Policy string `yaml:"policy"`
	Tier   string `yaml:"tier"`
	Input  *price `yaml:"input"`
	Output *price `yaml:"output"`
	line   int
}

func (u *unknownSpec) UnmarshalYAML(n *yaml.Node) error {
	u.line = n.Line
	if n.Kind == yaml.ScalarNode {
		u.Policy = n.Value
		return nil
	}
	if err := knownKeys(n, "unknown_models.", "policy", "tier", "input", "output"); err != nil {
		return err
	}
	type plain unknownSpec
	return n.Decode((*plain)(u))
}

func (e *entry) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, "model ", "provider", "tier", "input", "output", "aliases", "max_output", "reasoning"); err != nil {
		return err
	}
	type plain entry
	return n.Decode((*plain)(e))
}

// knownKeys rejects a mapping key that is not allowed. The decoder's own
// KnownFields check does not reach through custom unmarshalers, so each one
// calls this.
func knownKeys(n *yaml.Node, what string, allowed ...string) error {
	if n.Kind != yaml.MappingNode {
		return nil // the typed decode reports the wrong kind
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			return fmt.Errorf("line %d: unknown field %s%s (want one of %s)", k.Line, what, k.Value, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// count is a whole number of tokens, parsed from the literal text so that
// "1.5" or "1e4" is an error rather than a rounded number.
type count int64

func (c *count) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q: want a whole number of tokens", n.Line, n.Value)
	}
	*c = count(v)
	return nil
}

// price is US dollars per million tokens written as a decimal, held in
// micro-dollars. It is parsed from the literal text, never through a float, so
// "0.075" is exactly 75000.
type price int64

func (p *price) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseMicro(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: price %q: %w", n.Line, n.Value, err)
	}
	*p = price(v)
	return nil
}

func parseMicro(s string) (int64, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "$")
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0, errors.New("want a non-negative decimal number of US dollars")
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 6 {
		return 0, errors.New("more than 6 decimal places")
	}
	if whole == "" {
		whole = "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/1_000_000-1 {
		return 0, errors.New("want a non-negative decimal number of US dollars")
	}
	var f int64
	if frac != "" {
		f, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil || f < 0 {
			return 0, errors.New("want a non-negative decimal number of US dollars")
		}
	}
	return w*1_000_000 + f, nil
}
