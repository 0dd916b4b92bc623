// Package policy decides what happens to a digest from its evidence: a
// versioned YAML file of CEL rules, each with an effect (deny, review, allow)
// and a message. The verdict names the policy's digest and every rule that
// fired with the evidence it saw, so a decision can be explained and replayed.
package policy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"go.yaml.in/yaml/v3"
)

// Effect of a rule or verdict.
type Effect string

const (
	Allow  Effect = "allow"
	Review Effect = "review"
	Deny   Effect = "deny"
)

func (e Effect) rank() int {
	switch e {
	case Deny:
		return 3
	case Review:
		return 2
	case Allow:
		return 1
	}
	return 0
}

// APIVersion is the policy file format this version reads.
const APIVersion = "airlock.dev/policy/v1"

// Rule is one rule of a policy file.
type Rule struct {
	Name    string `yaml:"name" json:"name"`
	Effect  Effect `yaml:"effect" json:"effect"`
	When    string `yaml:"when" json:"when"`                             // CEL, bool
	Message string `yaml:"message" json:"message"`                       // shown when the rule fires
	Show    string `yaml:"evidence,omitempty" json:"evidence,omitempty"` // CEL: the evidence to show when it fires
	// IncludeWaived makes the rule see waived findings too; by default a
	// rule's findings are those no active waiver covers.
	IncludeWaived bool `yaml:"includeWaived,omitempty" json:"includeWaived,omitempty"`
}

// File is a policy file.
type File struct {
	APIVersion  string `yaml:"apiVersion"`
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
	Default     Effect `yaml:"default"` // verdict when no rule fires
	Rules       []Rule `yaml:"rules"`
	// Reevaluation says what new findings on an approved digest lead to.
	Reevaluation reevaluationFile `yaml:"reevaluation,omitempty"`
}

// Policy is a compiled policy.
type Policy struct {
	Name    string
	Digest  string // sha256 of the file's bytes: the policy version
	Default Effect
	Source  []byte
	// Reevaluation: what new findings on an approved digest lead to.
	Reevaluation Reevaluation
	rules        []compiled
}

type compiled struct {
	Rule
	when cel.Program
	show cel.Program
}

//go:embed default.yaml
var defaultPolicy []byte

// DefaultSource is the embedded strict default policy file.
func DefaultSource() []byte { return bytes.Clone(defaultPolicy) }

// Default returns the embedded strict default policy.
func Default() *Policy {
	p, err := Parse(defaultPolicy)
	if err != nil {
		panic("embedded default policy: " + err.Error())
	}
	return p
}

// Load reads and compiles a policy file.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

const maxPolicy = 1 << 20

// Parse compiles a policy file. Every expression is type-checked now, so a
// typo fails at load time, not at the first decision.
func Parse(b []byte) (*Policy, error) {
	if len(b) > maxPolicy {
		return nil, fmt.Errorf("policy is %d bytes; the limit is %d", len(b), maxPolicy)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a policy file: %w", err)
	}
	if f.APIVersion != APIVersion {
		return nil, fmt.Errorf("apiVersion %q: want %s", f.APIVersion, APIVersion)
	}
	if f.Name == "" {
		return nil, errors.New("the policy needs a name")
	}
	if f.Default == "" {
		f.Default = Review
	}
	if f.Default.rank() == 0 {
		return nil, fmt.Errorf("default %q: want allow, review or deny", f.Default)
	}
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	p := &Policy{Name: f.Name, Digest: "sha256:" + hex.EncodeToString(sum[:]), Default: f.Default, Source: bytes.Clone(b)}
	if p.Reevaluation, err = f.Reevaluation.compile(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, r := range f.Rules {
		where := fmt.Sprintf("rule %d (%s)", i+1, r.Name)
		if r.Name == "" {
			return nil, fmt.Errorf("rule %d has no name", i+1)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("%s: the name is used twice", where)
		}
		seen[r.Name] = true
		if r.Effect.rank() == 0 {
			return nil, fmt.Errorf("%s: effect %q: want allow, review or deny", where, r.Effect)
		}
		if r.Message == "" {
			return nil, fmt.Errorf("%s: a message is required: it is what the reviewer and the audit log see", where)
		}
		c := compiled{Rule: r}
		if c.when, err = program(env, r.When, cel.BoolType); err != nil {
			return nil, fmt.Errorf("%s: when: %w", where, err)
		}
		if r.Show != "" {
			if c.show, err = program(env, r.Show, nil); err != nil {
				return nil, fmt.Errorf("%s: evidence: %w", where, err)
			}
		}
		p.rules = append(p.rules, c)
	}
	return p, nil
}

// Rules returns the policy's rules in order.
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.Rule
	}
	return out
}

// inputs are the variables every expression sees.
var inputs = []string{"digest", "image", "source", "stages", "findings", "sbom", "profile", "hardening"}

func newEnv() (*cel.Env, error) {
	opts := []cel.EnvOption{cel.CrossTypeNumericComparisons(true)}
	for _, v := range inputs {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	return cel.NewEnv(opts...)
}

func program(env *cel.Env, expr string, want *cel.Type) (cel.Program, error) {
	if expr == "" {
		return nil, errors.New("an expression is required")
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, iss.Err()
	}
	if want != nil && !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("the expression gives %s; want %s", ast.OutputType(), want)
	}
	// Bounded: a policy is code, but it should not be able to stall a decision.
	return env.Program(ast, cel.CostLimit(1_000_000), cel.InterruptCheckFrequency(100))
}

// Fired is one rule that fired.
type Fired struct {
	Rule     string `json:"rule"`
	Effect   Effect `json:"effect"`
	Message  string `json:"message"`
	Evidence any    `json:"evidence,omitempty"`
}

// Verdict is the result of evaluating a policy over a digest's evidence.
type Verdict struct {
	Digest       string    `json:"digest"`
	Policy       string    `json:"policy"`
	PolicyDigest string    `json:"policyDigest"`
	Effect       Effect    `json:"effect"`
	Message      string    `json:"message"` // of the decisive rule, or why the default applied
	Fired        []Fired   `json:"fired"`
	At           time.Time `json:"at"`
	// EvidenceDigest is sha256 of the evidence document the verdict was made on.
	EvidenceDigest string `json:"evidenceDigest"`
}

// Decisive returns the first rule that fired with the verdict's effect.
func (v Verdict) Decisive() *Fired {
	for i := range v.Fired {
		if v.Fired[i].Effect == v.Effect {
			return &v.Fired[i]
		}
	}
	return nil
}

// Evaluate runs every rule over ev. A rule whose expression fails to
// evaluate counts as fired with effect review: a broken rule must not let
// an image through.
func (p *Policy) Evaluate(ev Evidence) (Verdict, error) {
	doc, err := json.Marshal(ev)
	if err != nil {
		return Verdict{}, fmt.Errorf("evidence: %w", err)
	}
	sum := sha256.Sum256(doc)
	var vars map[string]any
	if err := json.Unmarshal(doc, &vars); err != nil {
		return Verdict{}, fmt.Errorf("evidence: %w", err)
	}
	v := Verdict{Digest: ev.Digest, Policy: p.Name, PolicyDigest: p.Digest, Fired: []Fired{}, At: time.Now().UTC(),
		EvidenceDigest: "sha256:" + hex.EncodeToString(sum[:])}
	active := activeFindings(vars)
	for _, r := range p.rules {
		vars := vars
		if !r.IncludeWaived {
			vars = active
		}
		out, _, err := r.when.Eval(vars)
		if err != nil {
			v.Fired = append(v.Fired, Fired{Rule: r.Name, Effect: maxEffect(r.Effect, Review),
				Message: fmt.Sprintf("rule could not be evaluated (%v); %s", err, r.Message)})
			continue
		}
		if fired, ok := out.Value().(bool); !ok || !fired {
			continue
		}
		f := Fired{Rule: r.Name, Effect: r.Effect, Message: r.Message}
		if r.show != nil {
			if o, _, err := r.show.Eval(vars); err == nil {
				f.Evidence = native(o)
			}
		}
		v.Fired = append(v.Fired, f)
	}
	v.Effect = p.Default
	v.Message = fmt.Sprintf("no rule fired; the policy's default is %s", p.Default)
	if len(v.Fired) > 0 {
		v.Effect = Allow
		for _, f := range v.Fired {
			v.Effect = maxEffect(v.Effect, f.Effect)
		}
		v.Message = v.Decisive().Message
	}
	return v, nil
}

func maxEffect(a, b Effect) Effect {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// native turns a CEL value into plain Go values that encode as JSON.
func native(v ref.Val) any {
	switch x := v.(type) {
	case traits.Lister:
		var out []any
		it := x.Iterator()
		for it.HasNext() == types.True {
			out = append(out, native(it.Next()))
		}
		return out
	case traits.Mapper:
		out := map[string]any{}
		it := x.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			out[fmt.Sprint(k.Value())] = native(x.Get(k))
		}
		return out
	}
	return v.Value()
}
