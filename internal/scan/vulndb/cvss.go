package vulndb

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/airlock-dev/airlock/internal/scan"
)

// ErrBadVector is wrapped by every error about a CVSS vector that cannot be
// scored.
var ErrBadVector = errors.New("bad CVSS vector")

// CVSS is a scored vector.
type CVSS struct {
	Version string  // "2.0", "3.0", "3.1", "4.0"
	Vector  string  // as given
	Score   float64 // base score; for v4.0 the score of the groups the vector carries
	// Nomenclature says which metric groups a v4.0 score reflects: CVSS-B
	// (base), CVSS-BT (+ threat), CVSS-BE (+ environmental) or CVSS-BTE.
	Nomenclature string `json:",omitempty"`
}

// Severity is the qualitative rating of the score: the CVSS v3 and v4.0
// scale (9.0 critical, 7.0 high, 4.0 medium, else low) or, for v2, NVD's
// (7.0 high, 4.0 medium, else low).
func (c CVSS) Severity() string {
	if c.Version == "2.0" {
		switch {
		case c.Score >= 7:
			return scan.SeverityHigh
		case c.Score >= 4:
			return scan.SeverityMedium
		}
		return scan.SeverityLow
	}
	switch {
	case c.Score >= 9:
		return scan.SeverityCritical
	case c.Score >= 7:
		return scan.SeverityHigh
	case c.Score >= 4:
		return scan.SeverityMedium
	}
	return scan.SeverityLow
}

const maxVectorLen = 512

// splitVector reads "K:V/K:V/…" into a map, refusing repeated and empty metrics.
func splitVector(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, part := range strings.Split(v, "/") {
		k, val, ok := strings.Cut(part, ":")
		if !ok || k == "" || val == "" {
			return nil, fmt.Errorf("%w: %q is not METRIC:VALUE", ErrBadVector, part)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: metric %s given twice", ErrBadVector, k)
		}
		m[k] = val
	}
	return m, nil
}

var cvss3Weights = map[string]map[string]float64{
	"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
	"AC": {"L": 0.77, "H": 0.44},
	"PR": {"N": 0.85, "L": 0.62, "H": 0.27},
	"UI": {"N": 0.85, "R": 0.62},
	"S":  {"U": 0, "C": 0},
	"C":  {"H": 0.56, "L": 0.22, "N": 0},
	"I":  {"H": 0.56, "L": 0.22, "N": 0},
	"A":  {"H": 0.56, "L": 0.22, "N": 0},
}

// cvss3Other are the temporal and environmental metrics with their values;
// they are checked but do not change the base score.
var cvss3Other = map[string]string{
	"E": "XUPFH", "RL": "XOTWU", "RC": "XURC",
	"CR": "XLMH", "IR": "XLMH", "AR": "XLMH",
	"MAV": "XNALP", "MAC": "XLH", "MPR": "XNLH", "MUI": "XNR", "MS": "XUC",
	"MC": "XNLH", "MI": "XNLH", "MA": "XNLH",
}

// ParseCVSS3 scores a CVSS v3.0 or v3.1 vector with the specification's
// base score formula (https://www.first.org/cvss/v3.1/specification-document §7.1).
func ParseCVSS3(vector string) (CVSS, error) {
	if len(vector) > maxVectorLen {
		return CVSS{}, fmt.Errorf("%w: longer than %d bytes", ErrBadVector, maxVectorLen)
	}
	rest, ok := strings.CutPrefix(vector, "CVSS:3.1/")
	ver := "3.1"
	if !ok {
		if rest, ok = strings.CutPrefix(vector, "CVSS:3.0/"); !ok {
			return CVSS{}, fmt.Errorf("%w: %q does not start with CVSS:3.0/ or CVSS:3.1/", ErrBadVector, trunc(vector))
		}
		ver = "3.0"
	}
	m, err := splitVector(rest)
	if err != nil {
		return CVSS{}, err
	}
	w := map[string]float64{}
	for metric, values := range cvss3Weights {
		v, ok := m[metric]
		if !ok {
			return CVSS{}, fmt.Errorf("%w: base metric %s missing", ErrBadVector, metric)
		}
		x, ok := values[v]
		if !ok {
			return CVSS{}, fmt.Errorf("%w: %s:%s is not a valid value", ErrBadVector, metric, v)
		}
		w[metric] = x
	}
	for metric, v := range m {
		if _, base := cvss3Weights[metric]; base {
			continue
		}
		allowed, ok := cvss3Other[metric]
		if !ok {
			return CVSS{}, fmt.Errorf("%w: unknown metric %s", ErrBadVector, metric)
		}
		if len(v) != 1 || !strings.Contains(allowed, v) {
			return CVSS{}, fmt.Errorf("%w: %s:%s is not a valid value", ErrBadVector, metric, v)
		}
	}
	changed := m["S"] == "C"
	pr := w["PR"]
	if changed {
		switch m["PR"] {
		case "L":
			pr = 0.68
		case "H":
			pr = 0.5
		}
	}
	iss := 1 - (1-w["C"])*(1-w["I"])*(1-w["A"])
	var impact float64
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	} else {
		impact = 6.42 * iss
	}
	exploitability := 8.22 * w["AV"] * w["AC"] * pr * w["UI"]
	roundup := roundup31
	if ver == "3.0" {
		roundup = roundup30
	}
	var score float64
	switch {
	case impact <= 0:
		score = 0
	case changed:
		score = roundup(math.Min(1.08*(impact+exploitability), 10))
	default:
		score = roundup(math.Min(impact+exploitability, 10))
	}
	return CVSS{Version: ver, Vector: vector, Score: score}, nil
}

// roundup31 is CVSS v3.1's Roundup (Appendix A), which avoids floating point
// surprises such as 4.000001 rounding to 4.1.
func roundup31(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}

// roundup30 is CVSS v3.0's round up to one decimal.
func roundup30(x float64) float64 { return math.Ceil(x*10) / 10 }

var cvss2Weights = map[string]map[string]float64{
	"AV": {"L": 0.395, "A": 0.646, "N": 1},
	"AC": {"H": 0.35, "M": 0.61, "L": 0.71},
	"Au": {"M": 0.45, "S": 0.56, "N": 0.704},
	"C":  {"N": 0, "P": 0.275, "C": 0.66},
	"I":  {"N": 0, "P": 0.275, "C": 0.66},
	"A":  {"N": 0, "P": 0.275, "C": 0.66},
}

var cvss2Other = map[string][]string{
	"E": {"U", "POC", "F", "H", "ND"}, "RL": {"OF", "TF", "W", "U", "ND"}, "RC": {"UC", "UR", "C", "ND"},
	"CDP": {"N", "L", "LM", "MH", "H", "ND"}, "TD": {"N", "L", "M", "H", "ND"},
	"CR": {"L", "M", "H", "ND"}, "IR": {"L", "M", "H", "ND"}, "AR": {"L", "M", "H", "ND"},
}

// ParseCVSS2 scores a CVSS v2 vector ("AV:N/AC:L/Au:N/C:P/I:P/A:P", with or
// without parentheses or a "CVSS:2.0/" prefix) with the v2 base equation.
func ParseCVSS2(vector string) (CVSS, error) {
	if len(vector) > maxVectorLen {
		return CVSS{}, fmt.Errorf("%w: longer than %d bytes", ErrBadVector, maxVectorLen)
	}
	v := strings.TrimSuffix(strings.TrimPrefix(vector, "("), ")")
	v = strings.TrimPrefix(v, "CVSS:2.0/")
	m, err := splitVector(v)
	if err != nil {
		return CVSS{}, err
	}
	w := map[string]float64{}
	for metric, values := range cvss2Weights {
		val, ok := m[metric]
		if !ok {
			return CVSS{}, fmt.Errorf("%w: base metric %s missing", ErrBadVector, metric)
		}
		x, ok := values[val]
		if !ok {
			return CVSS{}, fmt.Errorf("%w: %s:%s is not a valid value", ErrBadVector, metric, val)
		}
		w[metric] = x
	}
	for metric, val := range m {
		if _, base := cvss2Weights[metric]; base {
			continue
		}
		allowed, ok := cvss2Other[metric]
		if !ok {
			return CVSS{}, fmt.Errorf("%w: unknown metric %s", ErrBadVector, metric)
		}
		found := false
		for _, a := range allowed {
			found = found || a == val
		}
		if !found {
			return CVSS{}, fmt.Errorf("%w: %s:%s is not a valid value", ErrBadVector, metric, val)
		}
	}
	impact := 10.41 * (1 - (1-w["C"])*(1-w["I"])*(1-w["A"]))
	exploitability := 20 * w["AV"] * w["AC"] * w["Au"]
	f := 1.176
	if impact == 0 {
		f = 0
	}
	score := math.Round(((0.6*impact)+(0.4*exploitability)-1.5)*f*10) / 10
	if score < 0 {
		score = 0
	}
	return CVSS{Version: "2.0", Vector: vector, Score: score}, nil
}

// ParseCVSS scores a vector of an OSV severity type: CVSS_V4, CVSS_V3 or
// CVSS_V2.
func ParseCVSS(typ, vector string) (CVSS, error) {
	switch typ {
	case "CVSS_V4":
		return ParseCVSS4(vector)
	case "CVSS_V3":
		return ParseCVSS3(vector)
	case "CVSS_V2":
		return ParseCVSS2(vector)
	}
	return CVSS{}, fmt.Errorf("%w: severity type %q is not a CVSS vector", ErrUnscored, typ)
}

// ErrUnscored is returned for severities Airlock does not compute a score for.
var ErrUnscored = errors.New("not scored")

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
