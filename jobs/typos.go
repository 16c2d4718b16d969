package jobs

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// knownKeys are the keys of a job file that overseer reads itself (README,
// Jobs); every other key goes to the job's environment.
var knownKeys = []string{
	"COMMAND", "TEST", "SHELL", "TEST_TIMEOUT", "TEST_INTERVAL", "DIR", "USER", "GROUP",
	"RESTART", "START_SECS", "RESTART_DELAY", "RESTART_MAX_DELAY", "RESTART_RESET",
	"START_RETRIES", "RESTART_ON_BINARY_CHANGE", "STOP_SIGNAL", "STOP_TIMEOUT", "METRICS_INTERVAL",
	"START_LIMIT", "START_LIMIT_INTERVAL", "MEMORY_MAX",
	"READY", "READY_INTERVAL", "READY_TIMEOUT", "INSTANCES",
	"AFTER", "RESTART_WITH",
}

// commonEnv are environment variables (environ(7), POSIX, the shells')
// that a job file may well set and that lie near a known key: SHLVL is
// two edits from SHELL, USERNAME starts with USER.
var commonEnv = map[string]bool{
	"SHLVL": true, "USERNAME": true, "USERPROFILE": true, "GROUPS": true, "SHELLOPTS": true,
}

// Warning is a key of a job file that is not one of overseer's but looks
// like a misspelling of one (KeyLike). The key still goes to the job's
// environment; a Warning never holds a value from the file.
type Warning struct {
	File string // base name, e.g. "web.env"
	Line int    // 0 when unknown
	Key  string // the key in the file, e.g. RESTRAT
	Like string // the known key it resembles, e.g. RESTART
}

// Where returns the file and line, "web.env:3".
func (w Warning) Where() string {
	if w.Line > 0 {
		return fmt.Sprintf("%s:%d", w.File, w.Line)
	}
	return w.File
}

// Message says what is wrong, without the file and line.
func (w Warning) Message() string {
	return fmt.Sprintf("%s is not a key overseer knows: did you mean %s? it goes to the job's environment", w.Key, w.Like)
}

func (w Warning) String() string { return w.Where() + ": " + w.Message() }

var upperKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`) })

// suggestKey returns the known key that key looks like a misspelling of,
// or "" when it looks like none. Only keys in upper case can: within one
// edit (Damerau-Levenshtein: insert, delete, replace, swap two neighbours)
// of a known key for a key shorter than 5 characters, within two for a
// longer one (RESTRAT, STOP_TIMOUT, TEST_INTERVALL); or starting with a
// known key of two or more words (RESTART_DELAYS, STOP_TIMEOUT_SECS).
// Common environment variables (commonEnv) look like none.
func suggestKey(key string) string {
	if like, ok := suggested.Load(key); ok {
		return like.(string)
	}
	like := nearestKey(key)
	if suggestedN.Add(1) <= maxSuggested {
		suggested.Store(key, like)
	}
	return like
}

// suggested remembers suggestKey's answers, by key: 5000 job files that
// each set the same keys of their own asked the same question 5000 times
// (a fifth of parsing them). At most maxSuggested keys are remembered.
var (
	suggested  sync.Map
	suggestedN atomic.Int64
)

const maxSuggested = 4096

func nearestKey(key string) string {
	if !upperKey().MatchString(key) || commonEnv[key] || slices.Contains(knownKeys, key) {
		return ""
	}
	limit := 1
	if len(key) >= 5 {
		limit = 2
	}
	best, bestDist := "", limit+1
	for _, k := range knownKeys {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return best
	}
	for _, k := range knownKeys {
		if strings.Contains(k, "_") && strings.HasPrefix(key, k) && len(k) > len(best) {
			best = k
		}
	}
	return best
}

// Nearest returns the candidate word is most likely a misspelling of:
// within an edit distance of 1 (2 for words of 5 bytes or more), the
// first of the nearest; "" when none is that near, or word is one.
func Nearest(word string, candidates []string) string {
	limit := 1
	if len(word) >= 5 {
		limit = 2
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		d := editDistance(word, c)
		if d == 0 {
			return ""
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b
// (bytes): the fewest insertions, deletions, replacements and swaps of
// two neighbours that turn a into b, no substring edited twice.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// keyWarnings returns a Warning for each key of the file (its source src)
// that looks like a misspelt known key, in the order of their lines.
func keyWarnings(file string, src []byte, keys map[string]string) []Warning {
	var out []Warning
	for k := range keys {
		if like := suggestKey(k); like != "" {
			out = append(out, Warning{File: file, Line: keyLine(src, k), Key: k, Like: like})
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Line != out[b].Line {
			return out[a].Line < out[b].Line
		}
		return out[a].Key < out[b].Key
	})
	return out
}
