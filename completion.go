package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"

	"overseer/jobs"
)

// runCompletion answers `overseer completion bash|zsh|fish`: a script
// for that shell that completes verbs, flags and job names, the names
// asked of the running daemon (README.md, Completion, says how to install
// it).
func runCompletion(shell string, stdout, stderr io.Writer) int {
	scripts := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
	if scripts[shell] == "" {
		fmt.Fprintf(stderr, "overseer: usage: overseer completion bash|zsh|fish\n")
		return exitUsage
	}
	if _, err := io.WriteString(stdout, completionWords().replacer().Replace(scripts[shell])); err != nil {
		fmt.Fprintf(stderr, "overseer: completion: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// completionData is what a completion script knows, all from the table of
// verbs and the flag set: nothing here is a second list to keep in step.
type completionData struct {
	Verbs     string      // every verb, lower case
	Flags     string      // overseer's flags: "-config-dir -d ..."
	Valued    string      // the flags (overseer's and the verbs') that take a value
	VerbFlags [][2]string // a verb (lower case) and its own flags
	FlagList  []flagWord  // overseer's flags and the verbs', one by one (fish)
	NameVerbs []string    // the verbs whose first argument is a job's name
	States    string      // WAIT's states
	Signals   string      // the signals SIGNAL knows by name
}

// flagWord is a flag, for fish: Verb is "" for overseer's own.
type flagWord struct {
	Verb, Name string // the name without its dash
	Valued     bool   // it takes a value
}

// completionWords gathers completionData.
func completionWords() completionData {
	var c completionData
	var verbNames, valued []string
	for _, v := range commandVerbs() {
		name := strings.ToLower(v.name)
		verbNames = append(verbNames, name)
		// SPAWN's NAME is a new one.
		if v.name != "SPAWN" && (strings.HasPrefix(v.synopsis, "NAME") || strings.HasPrefix(v.synopsis, "[NAME]")) {
			c.NameVerbs = append(c.NameVerbs, name)
		}
		var flags []string
		verbFlagSet("overseer", v, new(cliArgs), new(options)).VisitAll(func(f *flag.Flag) {
			flags = append(flags, "-"+f.Name)
			if !isBool(f) {
				valued = append(valued, "-"+f.Name, "--"+f.Name)
			}
			c.FlagList = append(c.FlagList, flagWord{Verb: name, Name: f.Name, Valued: !isBool(f)})
		})
		if len(flags) > 0 {
			c.VerbFlags = append(c.VerbFlags, [2]string{name, strings.Join(flags, " ")})
		}
	}
	slices.Sort(verbNames)
	c.Verbs = strings.Join(verbNames, " ")
	slices.Sort(valued)
	valued = slices.Compact(valued)

	var flags []string
	newFlagSet("overseer", new(options)).VisitAll(func(f *flag.Flag) {
		flags = append(flags, "-"+f.Name)
		if !isBool(f) {
			valued = append(valued, "-"+f.Name, "--"+f.Name)
		}
		c.FlagList = append(c.FlagList, flagWord{Name: f.Name, Valued: !isBool(f)})
	})
	c.Flags = strings.Join(flags, " ")
	c.Valued = strings.Join(valued, " ")

	var states []string
	for s := range waitStates {
		states = append(states, string(s))
	}
	slices.Sort(states)
	c.States = strings.Join(states, " ")

	var sigs []string
	for n := 1; n < 32; n++ {
		if sig := parseSig(fmt.Sprint(n)); sig != 0 {
			sigs = append(sigs, jobs.SignalName(syscall.Signal(n)))
		}
	}
	c.Signals = strings.Join(sigs, " ")
	return c
}

// replacer fills a script's placeholders: {{.Name}} with a list of words,
// and a line that is only {{.Name}} with one line per item (none for no
// item). Plain replacement, not text/template: executing a template calls
// methods by name through reflection, which turns off the linker's
// removal of unused methods in the whole binary (16.0 MB instead of 14.5,
// and a slower start of every client; BENCHMARKS.md, Status round trip).
func (c completionData) replacer() *strings.Replacer {
	var bashCases, zshCases, fishFlags strings.Builder
	for _, vf := range c.VerbFlags {
		fmt.Fprintf(&bashCases, "\t\t%s) mapfile -t COMPREPLY < <(compgen -W '%s' -- \"$cur\") ;;\n", vf[0], vf[1])
		fmt.Fprintf(&zshCases, "\t\t%s) compadd -- %s ;;\n", vf[0], vf[1])
	}
	for _, f := range c.FlagList {
		at := "none"
		if f.Verb != "" {
			at = f.Verb + " any"
		}
		fmt.Fprintf(&fishFlags, "complete -c overseer -n '__overseer_at %s' -o %s", at, f.Name)
		if f.Valued {
			fishFlags.WriteString(" -r -F")
		}
		fishFlags.WriteString("\n")
	}
	var nameCases []string
	for _, v := range c.NameVerbs {
		nameCases = append(nameCases, v+":0")
	}
	return strings.NewReplacer(
		"{{.Valued}}", c.Valued,
		"{{.Flags}}", c.Flags,
		"{{.Verbs}}", c.Verbs,
		"{{.States}}", c.States,
		"{{.Signals}}", c.Signals,
		"{{.NameVerbs}}", strings.Join(c.NameVerbs, " "),
		"{{.NameCases}}", strings.Join(nameCases, "|"),
		"{{.BashVerbFlags}}\n", bashCases.String(),
		"{{.ZshVerbFlags}}\n", zshCases.String(),
		"{{.FishFlags}}\n", fishFlags.String(),
	)
}

// The scripts find the verb as overseer does: the first word after the
// flags (and their values). They ask the daemon for job names with the
// flags typed before the verb, so the same daemon answers, and a short
// -timeout, and -tty=false: the piped lines, not a table, whatever
// OVERSEER_TTY says; with no daemon, the answer is nothing, at once. A line
// `OK N jobs` (protocol.md, STATUS) is not a job.

var bashCompletion = `# bash completion for overseer: verbs, flags and job names (from the running overseerd).
# For this shell:  source <(overseer completion bash)
# For good (bash-completion loads it):
#   overseer completion bash > ~/.local/share/bash-completion/completions/overseer
_overseer() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local valued=' {{.Valued}} ' verb= args=0 i w
	local -a pre=()
	COMPREPLY=()
	if [[ $cur == = || $prev == = || $valued == *" $prev "* ]]; then
		[[ $cur == = ]] && cur=
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		compopt -o filenames 2>/dev/null
		return
	fi
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -z $verb ]]; then
			case $w in
			=) ((${#pre[@]})) && pre[${#pre[@]}-1]+="=${COMP_WORDS[i+1]}"; ((i++)) ;;
			-*)
				pre+=("$w")
				if [[ $valued == *" $w "* && ${COMP_WORDS[i+1]} != = ]]; then
					pre+=("${COMP_WORDS[i+1]}"); ((i++))
				fi ;;
			*) verb=${w,,} ;;
			esac
		else
			case $w in
			--)
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
				compopt -o filenames 2>/dev/null
				return ;;
			=) ((i++)) ;;
			-*) [[ $valued == *" $w "* && ${COMP_WORDS[i+1]} != = ]] && ((i++)) ;;
			*) ((args++)) ;;
			esac
		fi
	done
	if [[ -z $verb ]]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W '{{.Flags}}' -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W '{{.Verbs}}' -- "${cur,,}")
		fi
		return
	fi
	if [[ $cur == -* ]]; then
		case $verb in
{{.BashVerbFlags}}
		esac
		return
	fi
	case $verb:$args in
	completion:0) mapfile -t COMPREPLY < <(compgen -W 'bash zsh fish' -- "$cur") ;;
	{{.NameCases}})
		mapfile -t COMPREPLY < <(compgen -W "$("${COMP_WORDS[0]}" "${pre[@]}" -timeout 1s -tty=false status 2>/dev/null |
			awk '!/^OK [0-9]+ jobs?$/ {print $1}')" -- "$cur") ;;
	wait:1) mapfile -t COMPREPLY < <(compgen -W '{{.States}}' -- "${cur,,}") ;;
	signal:1) mapfile -t COMPREPLY < <(compgen -W '{{.Signals}}' -- "${cur^^}") ;;
	esac
}
complete -F _overseer overseer
`

var zshCompletion = `#compdef overseer
# zsh completion for overseer: verbs, flags and job names (from the running overseerd).
# For this shell (after compinit):  source <(overseer completion zsh)
# For good: overseer completion zsh > ~/.zfunc/_overseer
#   and in ~/.zshrc, before compinit:  fpath=(~/.zfunc $fpath)
_overseer() {
	local valued=' {{.Valued}} ' verb= w
	local -i i args=0
	local -a pre names
	if [[ $valued == *" ${words[CURRENT-1]} "* ]]; then
		_files
		return
	fi
	if [[ $PREFIX == -*=* ]]; then
		compset -P '*='
		_files
		return
	fi
	for ((i = 2; i < CURRENT; i++)); do
		w=${words[i]}
		if [[ -z $verb ]]; then
			case $w in
			-*=*) pre+=("$w") ;;
			-*)
				pre+=("$w")
				if [[ $valued == *" $w "* ]]; then
					pre+=("${words[i+1]}"); ((i++))
				fi ;;
			*) verb=${(L)w} ;;
			esac
		else
			case $w in
			--) _files; return ;;
			-*=*) ;;
			-*) [[ $valued == *" $w "* ]] && ((i++)) ;;
			*) ((args++)) ;;
			esac
		fi
	done
	if [[ -z $verb ]]; then
		if [[ $PREFIX == -* ]]; then
			compadd -- {{.Flags}}
		else
			compadd -- {{.Verbs}}
		fi
		return
	fi
	if [[ $PREFIX == -* ]]; then
		case $verb in
{{.ZshVerbFlags}}
		esac
		return
	fi
	case $verb:$args in
	completion:0) compadd -- bash zsh fish ;;
	{{.NameCases}})
		names=(${(f)"$(${words[1]} "${pre[@]}" -timeout 1s -tty=false status 2>/dev/null |
			awk '!/^OK [0-9]+ jobs?$/ {print $1}')"})
		compadd -- $names ;;
	wait:1) compadd -- {{.States}} ;;
	signal:1) compadd -- {{.Signals}} ;;
	esac
}
if [[ $funcstack[1] == _overseer ]]; then
	_overseer "$@" # autoloaded from fpath
else
	compdef _overseer overseer
fi
`

var fishCompletion = `# fish completion for overseer: verbs, flags and job names (from the running overseerd).
# For this shell:  overseer completion fish | source
# For good:  overseer completion fish > ~/.config/fish/completions/overseer.fish

# __overseer_parse sets __overseer_verb (lower case, or empty), the count of
# arguments after it, __overseer_args, and the flags before it, __overseer_pre.
function __overseer_parse
	set -l valued {{.Valued}}
	set -l words (commandline -opc)
	set -g __overseer_pre
	set -g __overseer_verb
	set -g __overseer_args 0
	set -l i 2
	while test $i -le (count $words)
		set -l w $words[$i]
		if test -z "$__overseer_verb"
			switch $w
				case '-*=*'
					set -a __overseer_pre $w
				case '-*'
					set -a __overseer_pre $w
					if contains -- $w $valued
						set i (math $i + 1)
						set -a __overseer_pre $words[$i]
					end
				case '*'
					set -g __overseer_verb (string lower -- $w)
			end
		else
			switch $w
				case '-*=*'
				case '-*'
					if contains -- $w $valued
						set i (math $i + 1)
					end
				case '*'
					set -g __overseer_args (math $__overseer_args + 1)
			end
		end
		set i (math $i + 1)
	end
end

# __overseer_at VERB... N: the word being completed is argument N (any: any
# word) of one of the verbs; none: there is no verb yet.
function __overseer_at
	__overseer_parse
	if test "$argv[-1]" = none
		test -z "$__overseer_verb"
		return
	end
	contains -- "$__overseer_verb" $argv[1..-2]; or return
	test "$argv[-1]" = any; or test "$argv[-1]" = $__overseer_args
end

function __overseer_names
	__overseer_parse
	set -l cmd (commandline -opc)[1]
	$cmd $__overseer_pre -timeout 1s -tty=false status 2>/dev/null | string match -rv '^OK [0-9]+ jobs?$' | string replace -r '\s.*' ''
end

complete -c overseer -f
complete -c overseer -n '__overseer_at none' -a '{{.Verbs}}'
{{.FishFlags}}
complete -c overseer -n '__overseer_at completion 0' -a 'bash zsh fish'
complete -c overseer -n '__overseer_at {{.NameVerbs}} 0' -a '(__overseer_names)'
complete -c overseer -n '__overseer_at wait 1' -a '{{.States}}'
complete -c overseer -n '__overseer_at signal 1' -a '{{.Signals}}'
`
