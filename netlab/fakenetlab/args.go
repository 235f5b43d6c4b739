package main

import (
	"fmt"
	"os"
	"strings"
)

// A tiny imitation of Python's argparse, enough to reproduce the way
// netlab reacts to its command lines: unique-prefix long options, bundled
// short flags (-vvv), attached values (-sKEY=VAL, --format=json), optional
// values (--snapshot [FILE]), choices, and usage errors on stderr with
// exit status 2.

type optKind int

const (
	optBool     optKind = iota // store_true
	optCount                   // -v -v
	optValue                   // one value
	optAppend                  // one value, repeatable
	optOptional                // nargs='?': a value if the next word is not an option
	optMulti                   // nargs='+'
)

type option struct {
	short, long string // "-s", "--set"; either may be ""
	kind        optKind
	metavar     string
	choices     []string
	def         string // optOptional: value when given without one
}

func (o option) name() string {
	if o.long != "" {
		return o.long
	}
	return o.short
}

func (o option) display() string {
	switch {
	case o.short != "" && o.long != "":
		return o.short + "/" + o.long
	case o.long != "":
		return o.long
	default:
		return o.short
	}
}

type positional struct {
	name     string
	optional bool
}

type argParser struct {
	prog        string // "netlab up"
	opts        []option
	positionals []positional
	exclusive   [][]string // groups of mutually exclusive option names
}

type parsedArgs struct {
	counts map[string]int
	values map[string][]string
	pos    map[string]string
}

func (a *parsedArgs) flag(name string) bool { return a.counts[name] > 0 }
func (a *parsedArgs) count(name string) int { return a.counts[name] }
func (a *parsedArgs) list(name string) []string {
	return a.values[name]
}
func (a *parsedArgs) value(name string) string {
	v := a.values[name]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}
func (a *parsedArgs) has(name string) bool { return a.counts[name] > 0 }

// usageError is an argparse error: usage and message on stderr, exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func (p *argParser) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s [-h]", p.prog)
	for _, o := range p.opts {
		flag := o.short
		if flag == "" {
			flag = o.long
		}
		meta := o.metavar
		if meta == "" {
			meta = strings.ToUpper(strings.TrimLeft(o.long, "-"))
		}
		if len(o.choices) > 0 {
			meta = "{" + strings.Join(o.choices, ",") + "}"
		}
		switch o.kind {
		case optBool, optCount:
			fmt.Fprintf(&b, " [%s]", flag)
		case optValue, optAppend:
			fmt.Fprintf(&b, " [%s %s]", flag, meta)
		case optOptional:
			fmt.Fprintf(&b, " [%s [%s]]", flag, meta)
		case optMulti:
			fmt.Fprintf(&b, " [%s %s [%s ...]]", flag, meta, meta)
		}
	}
	for _, ps := range p.positionals {
		if ps.optional {
			fmt.Fprintf(&b, " [%s]", ps.name)
		} else {
			fmt.Fprintf(&b, " %s", ps.name)
		}
	}
	return b.String()
}

// parse parses args. -h/--help prints the usage and exits 0; a usage
// error prints usage and message and exits 2.
func (p *argParser) parse(args []string) *parsedArgs {
	res, err := p.parseArgs(args)
	if err != nil {
		if err.msg == "help" {
			fmt.Println(p.usage())
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, p.usage())
		fmt.Fprintf(os.Stderr, "%s: error: %s\n", p.prog, err.msg)
		os.Exit(2)
	}
	return res
}

func (p *argParser) findLong(name string) (*option, *usageError) {
	var matches []*option
	for i := range p.opts {
		o := &p.opts[i]
		if o.long == name {
			return o, nil
		}
		if o.long != "" && strings.HasPrefix(o.long, name) {
			matches = append(matches, o)
		}
	}
	switch len(matches) {
	case 0:
		return nil, nil
	case 1:
		return matches[0], nil
	}
	var names []string
	for _, m := range matches {
		names = append(names, m.long)
	}
	return nil, &usageError{fmt.Sprintf("ambiguous option: %s could match %s", name, strings.Join(names, ", "))}
}

func (p *argParser) findShort(c byte) *option {
	for i := range p.opts {
		if p.opts[i].short == "-"+string(c) {
			return &p.opts[i]
		}
	}
	return nil
}

func isOptionWord(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	return !(s[1] >= '0' && s[1] <= '9') // negative numbers are values
}

func (p *argParser) parseArgs(args []string) (*parsedArgs, *usageError) {
	res := &parsedArgs{counts: map[string]int{}, values: map[string][]string{}, pos: map[string]string{}}
	var unknown, positionals []string
	seen := map[string]string{} // option name -> how it was written

	take := func(o *option, written string, attached *string, i *int) *usageError {
		seen[o.name()] = written
		res.counts[o.name()]++
		var vals []string
		switch o.kind {
		case optBool, optCount:
			if attached != nil {
				return &usageError{fmt.Sprintf("argument %s: ignored explicit argument '%s'", o.display(), *attached)}
			}
			return nil
		case optValue, optAppend:
			switch {
			case attached != nil:
				vals = []string{*attached}
			case *i+1 < len(args) && !isOptionWord(args[*i+1]):
				*i++
				vals = []string{args[*i]}
			default:
				return &usageError{fmt.Sprintf("argument %s: expected one argument", o.display())}
			}
		case optOptional:
			switch {
			case attached != nil:
				vals = []string{*attached}
			case *i+1 < len(args) && !isOptionWord(args[*i+1]):
				*i++
				vals = []string{args[*i]}
			default:
				vals = []string{o.def}
			}
		case optMulti:
			if attached != nil {
				vals = append(vals, *attached)
			}
			for *i+1 < len(args) && !isOptionWord(args[*i+1]) {
				*i++
				vals = append(vals, args[*i])
			}
			if len(vals) == 0 {
				return &usageError{fmt.Sprintf("argument %s: expected at least one argument", o.display())}
			}
		}
		if len(o.choices) > 0 {
			for _, v := range vals {
				ok := false
				for _, c := range o.choices {
					ok = ok || c == v
				}
				if !ok {
					quoted := make([]string, len(o.choices))
					for k, c := range o.choices {
						quoted[k] = "'" + c + "'"
					}
					return &usageError{fmt.Sprintf("argument %s: invalid choice: '%s' (choose from %s)", o.display(), v, strings.Join(quoted, ", "))}
				}
			}
		}
		if o.kind == optValue || o.kind == optOptional {
			res.values[o.name()] = vals
		} else {
			res.values[o.name()] = append(res.values[o.name()], vals...)
		}
		return nil
	}

	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positionals = append(positionals, args[i+1:]...)
			i = len(args)
		case a == "-h" || a == "--help":
			return nil, &usageError{"help"}
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a, "=")
			o, err := p.findLong(name)
			if err != nil {
				return nil, err
			}
			if o == nil {
				unknown = append(unknown, a)
				continue
			}
			var attached *string
			if hasVal {
				attached = &val
			}
			if err := take(o, name, attached, &i); err != nil {
				return nil, err
			}
		case isOptionWord(a):
			// Bundled short options: flags until one takes a value.
			for j := 1; j < len(a); j++ {
				o := p.findShort(a[j])
				if o == nil {
					if j == 1 {
						unknown = append(unknown, a)
					} else {
						return nil, &usageError{fmt.Sprintf("argument %s: ignored explicit argument '%s'", p.findShort(a[j-1]).display(), a[j:])}
					}
					break
				}
				if o.kind == optBool || o.kind == optCount {
					if err := take(o, o.short, nil, &i); err != nil {
						return nil, err
					}
					continue
				}
				var attached *string
				if rest := a[j+1:]; rest != "" {
					attached = &rest
				}
				if err := take(o, o.short, attached, &i); err != nil {
					return nil, err
				}
				break
			}
		default:
			positionals = append(positionals, a)
		}
	}

	k := 0
	for _, ps := range p.positionals {
		if k < len(positionals) {
			res.pos[ps.name] = positionals[k]
			k++
		} else if !ps.optional {
			return nil, &usageError{"the following arguments are required: " + ps.name}
		}
	}
	unknown = append(unknown, positionals[k:]...)
	if len(unknown) > 0 {
		return nil, &usageError{"unrecognized arguments: " + strings.Join(unknown, " ")}
	}
	for _, group := range p.exclusive {
		var first string
		for _, name := range group {
			if w, ok := seen[name]; ok {
				if first != "" {
					return nil, &usageError{fmt.Sprintf("argument %s: not allowed with argument %s", w, first)}
				}
				first = w
			}
		}
	}
	return res, nil
}
