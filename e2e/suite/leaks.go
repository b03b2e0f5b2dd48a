package suite

// The leak check: no component's log holds a token or a secret value —
// neither one the test knows (the tokens it requested, the values it put
// into the fake) nor anything shaped like a JWT (the tokens the driver's
// reconciler and the fake's Entra ID made).

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}`)

// FindLeaks reports, per log, the lines holding a known secret or a
// JWT-shaped string; it never repeats the secret itself.
func FindLeaks(secrets []string, procs ...*Process) []string {
	var found []string
	for _, p := range procs {
		data, err := os.ReadFile(p.Log)
		if err != nil {
			found = append(found, fmt.Sprintf("%s: cannot read its log: %v", p.Name, err))
			continue
		}
		for n, line := range strings.Split(string(data), "\n") {
			for i, s := range secrets {
				if s != "" && strings.Contains(line, s) {
					found = append(found, fmt.Sprintf("%s line %d holds known secret #%d", p.Log, n+1, i))
				}
			}
			if jwtShape.MatchString(line) {
				found = append(found, fmt.Sprintf("%s line %d holds a JWT", p.Log, n+1))
			}
		}
	}
	return found
}
