package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MinerLists are the crypto-miner network indicators of the Falco rules
// (miners/NOTICE.md): pool host names and the ports they serve on.
type MinerLists struct {
	Ports        []int    `yaml:"miner_ports"`
	Domains      []string `yaml:"miner_domains"`
	HTTPSDomains []string `yaml:"https_miner_domains"`
	HTTPDomains  []string `yaml:"http_miner_domains"`
}

// Miners reads the embedded miner lists.
func Miners() (MinerLists, error) {
	var m MinerLists
	b, err := Builtin.ReadFile("miners/falco-miner-lists.yaml")
	if err != nil {
		return m, err
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("miner lists: %w", err)
	}
	return m, nil
}

// MinerRules turns the miner lists into two rules: a pool host name named
// anywhere in a file or the config (high), and a pool host name with one of
// the miner ports, as a miner's pool URL has it (critical).
func MinerRules() ([]Rule, error) {
	m, err := Miners()
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, l := range [][]string{m.Domains, m.HTTPSDomains, m.HTTPDomains} {
		for _, d := range l {
			set[strings.ToLower(d)] = true
		}
	}
	domains := make([]string, 0, len(set))
	for d := range set {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	ports := make([]string, 0, len(m.Ports))
	for _, p := range m.Ports {
		ports = append(ports, strconv.Itoa(p))
	}
	quoted := make([]string, len(domains))
	for i, d := range domains {
		quoted[i] = regexp.QuoteMeta(d)
	}
	src := "builtin:miners/falco-miner-lists.yaml"
	return []Rule{
		{
			ID: "AIRLOCK-MINER-POOL-PORT", Type: "malware", Severity: "critical", Config: true, Source: src,
			Title:       "Crypto-mining pool address (known pool host and miner port)",
			Description: "A known mining pool host name followed by one of the ports miners use (Falco's miner lists).",
			Match:       Match{Any: domains, NoCase: true, Regex: `(?i)(` + strings.Join(quoted, "|") + `):(` + strings.Join(ports, "|") + `)\b`},
		},
		{
			ID: "AIRLOCK-MINER-POOL-HOST", Type: "malware", Severity: "high", Config: true, Source: src,
			Title:       "Crypto-mining pool host name",
			Description: "A known mining pool host name (Falco's miner lists) appears in the file.",
			Match:       Match{Any: domains, NoCase: true},
		},
	}, nil
}
