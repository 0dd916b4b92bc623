package pin

import (
	"regexp"
	"strings"
)

// Remote scripts run straight from the network (the Codecov bash uploader
// lesson): whoever controls the URL runs code in the build.
var remoteScriptPatterns = []*regexp.Regexp{
	// curl … | sh, wget -qO- … | sudo bash, curl … | python3
	regexp.MustCompile(`\b(?:curl|wget)\b[^|;\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+(?:\S+=\S*\s+)*)?(?:(?:ba|z|k|da|a)?sh|python[0-9.]*|perl|ruby|node|php)\b`),
	// sh -c "$(curl …)", bash -c "$(wget -O- …)"
	regexp.MustCompile(`\b(?:ba|z|k|da)?sh\s+-c\s+["']?\$\(\s*(?:curl|wget)\b[^)\n]*\)`),
	// bash <(curl …), source <(curl …), . <(wget …)
	regexp.MustCompile(`(?:\b(?:ba|z|k)?sh|\bsource|(?:^|\s)\.)\s+<\(\s*(?:curl|wget)\b[^)\n]*\)`),
	// PowerShell: iwr … | iex, iex (New-Object Net.WebClient).DownloadString(…)
	regexp.MustCompile(`(?i)\b(?:iwr|irm|Invoke-WebRequest|Invoke-RestMethod)\b[^|\n]*\|\s*(?:iex|Invoke-Expression)\b`),
	regexp.MustCompile(`(?i)\b(?:iex|Invoke-Expression)\s*\(?\s*\(?\s*New-Object\s+(?:System\.)?Net\.WebClient\s*\)?\s*\.DownloadString`),
}

var urlPattern = regexp.MustCompile(`https?://[^\s"'|)]+`)

// scriptHit is a remote script executed unverified, at offset in the text.
type scriptHit struct {
	Offset int
	Text   string
	URL    string
}

// findScripts finds remote scripts run unverified in shell text. Line
// continuations are read as spaces (offsets are kept).
func findScripts(s string) []scriptHit {
	if !strings.Contains(s, "curl") && !strings.Contains(s, "wget") && !strings.Contains(strings.ToLower(s), "iwr") &&
		!strings.Contains(strings.ToLower(s), "invoke-") && !strings.Contains(strings.ToLower(s), "webclient") && !strings.Contains(strings.ToLower(s), "irm") {
		return nil
	}
	flat := []byte(s)
	for i := 0; i+1 < len(flat); i++ {
		if flat[i] == '\\' && (flat[i+1] == '\n' || flat[i+1] == '\r') {
			flat[i] = ' '
			for j := i + 1; j < len(flat) && (flat[j] == '\n' || flat[j] == '\r'); j++ {
				flat[j] = ' '
			}
		}
	}
	var hits []scriptHit
	taken := map[int]bool{}
	for _, re := range remoteScriptPatterns {
		for _, m := range re.FindAllIndex(flat, -1) {
			start := m[0]
			for start < m[1] && (flat[start] == ' ' || flat[start] == '\t') {
				start++
			}
			if taken[start] {
				continue
			}
			taken[start] = true
			text := strings.Join(strings.Fields(string(flat[start:m[1]])), " ")
			if len(text) > 200 {
				text = text[:200] + "…"
			}
			hits = append(hits, scriptHit{Offset: start, Text: text, URL: urlPattern.FindString(text)})
		}
	}
	return hits
}

// scriptNote says what is wrong with a remote script and what to do.
func scriptNote(h scriptHit) string {
	what := "a remote script"
	if h.URL != "" {
		what = h.URL
	}
	return what + " is run without verification: download it to a file, check its sha256 (echo \"SUM  file\" | sha256sum -c) and run the file; or install a pinned package"
}
