package vulndb

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// CVSS v4.0 scoring (https://www.first.org/cvss/v4.0/specification-document
// §8): a vector falls into one of 270 macrovectors (equivalence classes
// EQ1–EQ6); the score is that macrovector's score from FIRST's lookup table,
// lowered by the vector's mean proportional severity distance from the
// highest-severity vectors of its macrovector towards the next lower
// macrovectors, and rounded to one decimal.
//
// The score is computed from the effective metric values: a modified
// (environmental) metric replaces its base metric, an absent Exploit Maturity
// counts as Attacked and absent security requirements as High, as the
// specification defines. The result is therefore CVSS-B, -BT, -BE or -BTE
// depending on the metric groups the vector carries (CVSS.Nomenclature).
//
// The arithmetic is exact (see score), so a result that is mathematically on
// a rounding boundary is rounded up as the specification says, whatever the
// order of floating-point operations would have made of it.

// cvss4Metrics are the metrics a v4.0 vector may carry and their values.
// The first eleven are the base metrics, which are mandatory; every other
// metric is optional and X (Not Defined) is the same as leaving it out.
var cvss4Metrics = []struct {
	name   string
	values []string
}{
	// base
	{"AV", []string{"N", "A", "L", "P"}},
	{"AC", []string{"L", "H"}},
	{"AT", []string{"N", "P"}},
	{"PR", []string{"N", "L", "H"}},
	{"UI", []string{"N", "P", "A"}},
	{"VC", []string{"H", "L", "N"}},
	{"VI", []string{"H", "L", "N"}},
	{"VA", []string{"H", "L", "N"}},
	{"SC", []string{"H", "L", "N"}},
	{"SI", []string{"H", "L", "N"}},
	{"SA", []string{"H", "L", "N"}},
	// threat
	{"E", []string{"X", "A", "P", "U"}},
	// environmental
	{"CR", []string{"X", "H", "M", "L"}},
	{"IR", []string{"X", "H", "M", "L"}},
	{"AR", []string{"X", "H", "M", "L"}},
	{"MAV", []string{"X", "N", "A", "L", "P"}},
	{"MAC", []string{"X", "L", "H"}},
	{"MAT", []string{"X", "N", "P"}},
	{"MPR", []string{"X", "N", "L", "H"}},
	{"MUI", []string{"X", "N", "P", "A"}},
	{"MVC", []string{"X", "H", "L", "N"}},
	{"MVI", []string{"X", "H", "L", "N"}},
	{"MVA", []string{"X", "H", "L", "N"}},
	{"MSC", []string{"X", "H", "L", "N"}},
	{"MSI", []string{"X", "S", "H", "L", "N"}},
	{"MSA", []string{"X", "S", "H", "L", "N"}},
	// supplemental (no effect on the score)
	{"S", []string{"X", "N", "P"}},
	{"AU", []string{"X", "N", "Y"}},
	{"R", []string{"X", "A", "U", "I"}},
	{"V", []string{"X", "D", "C"}},
	{"RE", []string{"X", "L", "M", "H"}},
	{"U", []string{"X", "Clear", "Green", "Amber", "Red"}},
}

const cvss4BaseCount = 11

// cvss4Vector holds a parsed vector's metrics (absent optional ones as "X").
type cvss4Vector map[string]string

// ParseCVSS4 scores a CVSS v4.0 vector ("CVSS:4.0/AV:N/AC:L/…"). All eleven
// base metrics must be present; threat, environmental and supplemental
// metrics are optional. Metrics may come in any order (published advisories
// do not always keep the specification's order), but each only once and
// with one of its defined values.
func ParseCVSS4(vector string) (CVSS, error) {
	if len(vector) > maxVectorLen {
		return CVSS{}, fmt.Errorf("%w: longer than %d bytes", ErrBadVector, maxVectorLen)
	}
	rest, ok := strings.CutPrefix(vector, "CVSS:4.0/")
	if !ok {
		return CVSS{}, fmt.Errorf("%w: %q does not start with CVSS:4.0/", ErrBadVector, trunc(vector))
	}
	m, err := splitVector(rest)
	if err != nil {
		return CVSS{}, err
	}
	v := cvss4Vector{}
	known := 0
	for i, def := range cvss4Metrics {
		val, ok := m[def.name]
		if !ok {
			if i < cvss4BaseCount {
				return CVSS{}, fmt.Errorf("%w: base metric %s missing", ErrBadVector, def.name)
			}
			v[def.name] = "X"
			continue
		}
		known++
		valid := false
		for _, allowed := range def.values {
			valid = valid || allowed == val
		}
		if !valid {
			return CVSS{}, fmt.Errorf("%w: %s:%s is not a valid value (one of %s)", ErrBadVector, def.name, val, strings.Join(def.values, ", "))
		}
		v[def.name] = val
	}
	if known != len(m) {
		for name := range m {
			if _, ok := v[name]; !ok {
				return CVSS{}, fmt.Errorf("%w: unknown metric %s", ErrBadVector, name)
			}
		}
	}
	return CVSS{Version: "4.0", Vector: vector, Score: v.score(), Nomenclature: v.nomenclature()}, nil
}

// nomenclature names the metric groups the score reflects (§1.3).
func (v cvss4Vector) nomenclature() string {
	n := "CVSS-B"
	if v["E"] != "X" {
		n += "T"
	}
	for _, name := range []string{"CR", "IR", "AR", "MAV", "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA"} {
		if v[name] != "X" {
			return n + "E"
		}
	}
	return n
}

// effective is a metric's value for scoring: the modified metric where one
// is given, Attacked for an undefined Exploit Maturity and High for an
// undefined security requirement (the specification's worst-case defaults).
func (v cvss4Vector) effective(metric string) string {
	val := v[metric]
	switch metric {
	case "E":
		if val == "X" {
			return "A"
		}
		return val
	case "CR", "IR", "AR":
		if val == "X" {
			return "H"
		}
		return val
	}
	if mod, ok := v["M"+metric]; ok && mod != "X" {
		return mod
	}
	return val
}

// macroVector is the vector's equivalence classes EQ1…EQ6 (§8.2, Table 24).
func (v cvss4Vector) macroVector() [6]int {
	e := v.effective
	var eq [6]int
	av, pr, ui := e("AV"), e("PR"), e("UI")
	switch {
	case av == "N" && pr == "N" && ui == "N":
		eq[0] = 0
	case (av == "N" || pr == "N" || ui == "N") && av != "P":
		eq[0] = 1
	default:
		eq[0] = 2
	}
	if e("AC") != "L" || e("AT") != "N" {
		eq[1] = 1
	}
	vc, vi, va := e("VC"), e("VI"), e("VA")
	switch {
	case vc == "H" && vi == "H":
		eq[2] = 0
	case vc == "H" || vi == "H" || va == "H":
		eq[2] = 1
	default:
		eq[2] = 2
	}
	// Safety can only be given as a modified metric (MSI:S, MSA:S).
	switch {
	case v["MSI"] == "S" || v["MSA"] == "S":
		eq[3] = 0
	case e("SC") == "H" || e("SI") == "H" || e("SA") == "H":
		eq[3] = 1
	default:
		eq[3] = 2
	}
	switch e("E") {
	case "A":
		eq[4] = 0
	case "P":
		eq[4] = 1
	default:
		eq[4] = 2
	}
	if !(e("CR") == "H" && vc == "H" || e("IR") == "H" && vi == "H" || e("AR") == "H" && va == "H") {
		eq[5] = 1
	}
	return eq
}

func macroKey(eq [6]int) string {
	var b [6]byte
	for i, x := range eq {
		b[i] = byte('0' + x)
	}
	return string(b[:])
}

// cvss4Lookup is the score of a macrovector in tenths, false when there is
// no such class.
func cvss4Lookup(eq [6]int) (int64, bool) {
	for _, x := range eq {
		if x < 0 || x > 9 {
			return 0, false
		}
	}
	s, ok := cvss4MacroScores[macroKey(eq)]
	return int64(math.Round(s * 10)), ok
}

// cvss4Levels are the severity levels of each metric's values in steps
// (0 is the most severe value; the reference calculator writes them as
// 0.0, 0.1, 0.2, … and divides by the class depth times 0.1).
var cvss4Levels = map[string]map[string]int64{
	"AV": {"N": 0, "A": 1, "L": 2, "P": 3},
	"PR": {"N": 0, "L": 1, "H": 2},
	"UI": {"N": 0, "P": 1, "A": 2},
	"AC": {"L": 0, "H": 1},
	"AT": {"N": 0, "P": 1},
	"VC": {"H": 0, "L": 1, "N": 2},
	"VI": {"H": 0, "L": 1, "N": 2},
	"VA": {"H": 0, "L": 1, "N": 2},
	"SC": {"H": 1, "L": 2, "N": 3},
	"SI": {"S": 0, "H": 1, "L": 2, "N": 3},
	"SA": {"S": 0, "H": 1, "L": 2, "N": 3},
	"CR": {"H": 0, "M": 1, "L": 2},
	"IR": {"H": 0, "M": 1, "L": 2},
	"AR": {"H": 0, "M": 1, "L": 2},
	"E":  {"U": 2, "P": 1, "A": 0},
}

// cvss4LevelOrder fixes the order distances are checked in.
var cvss4LevelOrder = []string{"AV", "PR", "UI", "AC", "AT", "VC", "VI", "VA", "SC", "SI", "SA", "CR", "IR", "AR", "E"}

// score is the CVSS v4.0 score of the vector (§8.2–8.3).
//
// The arithmetic is exact: scores and severity distances are whole tenths,
// the proportions rationals, and the result is rounded half up. Floating
// point would put results that are exactly on a rounding boundary (4.95)
// on either side of it depending on the order of operations.
func (v cvss4Vector) score() float64 {
	e := v.effective
	if e("VC") == "N" && e("VI") == "N" && e("VA") == "N" && e("SC") == "N" && e("SI") == "N" && e("SA") == "N" {
		return 0
	}
	eq := v.macroVector()
	value, ok := cvss4Lookup(eq)
	if !ok {
		// Every combination of valid metrics lands in a defined class; a
		// miss would be a bug in the class rules above.
		return 0
	}

	// The maximal scoring difference towards the next lower macrovector of
	// each EQ, in tenths; absent where there is none, and then left out of
	// the mean.
	type msd struct {
		tenths int64
		ok     bool
	}
	lower := func(next [6]int) msd {
		if s, ok := cvss4Lookup(next); ok {
			return msd{value - s, true}
		}
		return msd{}
	}
	bump := func(i int) [6]int { next := eq; next[i]++; return next }
	diffs := [5]msd{lower(bump(0)), lower(bump(1)), {}, lower(bump(3)), lower(bump(4))}
	// EQ3 and EQ6 move together: 00 → 01 or 10 (the higher of the two),
	// 01 → 11, 10 → 11, 11 → 21; 21 has nothing lower.
	switch eq3, eq6 := eq[2], eq[5]; {
	case eq3 == 0 && eq6 == 0:
		l, r := lower(bump(5)), lower(bump(2))
		if l.ok && r.ok {
			diffs[2] = msd{min(l.tenths, r.tenths), true}
		}
	case eq3 == 1 && eq6 == 0:
		diffs[2] = lower(bump(5))
	case eq6 == 1 && eq3 < 2:
		diffs[2] = lower(bump(2))
	}

	// The severity distance from the first highest-severity vector of the
	// macrovector that is at least as severe as this one in every metric.
	var dist map[string]int64
	for _, max := range cvss4MaxVectors(eq) {
		dist = map[string]int64{}
		all := true
		for _, metric := range cvss4LevelOrder {
			d := cvss4Levels[metric][e(metric)] - cvss4Levels[metric][max[metric]]
			dist[metric] = d
			all = all && d >= 0
		}
		if all {
			break
		}
	}
	current := [5]int64{
		dist["AV"] + dist["PR"] + dist["UI"],
		dist["AC"] + dist["AT"],
		dist["VC"] + dist["VI"] + dist["VA"] + dist["CR"] + dist["IR"] + dist["AR"],
		dist["SC"] + dist["SI"] + dist["SA"],
		0, // EQ5 has a single level per class
	}
	depth := [5]int64{
		cvss4Depth.eq1[eq[0]],
		cvss4Depth.eq2[eq[1]],
		cvss4Depth.eq3eq6[eq[2]][eq[5]],
		cvss4Depth.eq4[eq[3]],
		1,
	}
	// score = value − mean(msd·current/depth), all in tenths.
	sum := new(big.Rat)
	n := int64(0)
	for i, d := range diffs {
		if !d.ok {
			continue
		}
		n++
		sum.Add(sum, big.NewRat(d.tenths*current[i], depth[i]))
	}
	score := new(big.Rat).SetInt64(value)
	if n > 0 {
		score.Sub(score, sum.Quo(sum, big.NewRat(n, 1)))
	}
	// Round half up to whole tenths, then clamp to 0.0–10.0.
	score.Add(score, big.NewRat(1, 2))
	tenths := new(big.Int).Div(score.Num(), score.Denom()) // Euclidean: floor for positive denominators
	t := tenths.Int64()
	t = max(0, min(100, t))
	return float64(t) / 10
}

// cvss4MaxVectors are the highest-severity vectors of a macrovector: every
// combination of the per-EQ highest-severity metric values, in the
// reference order (§8.3; the combinations are FIRST's data).
func cvss4MaxVectors(eq [6]int) []map[string]string {
	parts := [][]string{
		cvss4MaxComposed.eq1[eq[0]],
		cvss4MaxComposed.eq2[eq[1]],
		cvss4MaxComposed.eq3eq6[eq[2]][eq[5]],
		cvss4MaxComposed.eq4[eq[3]],
		cvss4MaxComposed.eq5[eq[4]],
	}
	var out []map[string]string
	var walk func(i int, acc map[string]string)
	walk = func(i int, acc map[string]string) {
		if i == len(parts) {
			out = append(out, acc)
			return
		}
		for _, p := range parts[i] {
			next := make(map[string]string, len(acc)+6)
			for k, v := range acc {
				next[k] = v
			}
			for _, kv := range strings.Split(p, "/") {
				k, v, _ := strings.Cut(kv, ":")
				next[k] = v
			}
			walk(i+1, next)
		}
	}
	walk(0, map[string]string{})
	return out
}
