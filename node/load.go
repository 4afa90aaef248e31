package node

import (
	"bytes"
	"encoding"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ConfigError is one problem in a config file. It prints as FILE:LINE: PATH: MSG, such as
// `lbd.yaml:14: frontends[0].backend: no backend named "api2"`.
type ConfigError struct {
	// File is the file's base name.
	File string
	// Line is 1-based; 0 when the problem has no place in the file.
	Line int
	// Path is the field's place in the document, such as "backends[1].servers[0].weight";
	// "" for a problem of the file as a whole, such as a YAML syntax error.
	Path string
	// Msg says what is wrong.
	Msg string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors are all the problems found in a config file, sorted by line. It prints one
// problem per line.
type ConfigErrors []*ConfigError

func (l ConfigErrors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find each *ConfigError.
func (l ConfigErrors) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// LoadFile reads, decodes, completes with defaults and validates the config file at path.
// See Parse.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(filepath.Base(path), data)
}

// Parse decodes data, a config file that errors call name, applies the defaults and
// validates the result. Decoding is strict: an unknown key, a duplicate key or a value of
// the wrong type is an error. An empty file is a valid, empty config. On failure the error
// is a ConfigErrors listing every problem, sorted by line; validation runs only on a file
// that decodes cleanly. Config.Hash gives the version of the result.
func Parse(name string, data []byte) (*Config, error) {
	c, _, err := parse(name, data)
	return c, err
}

// parse is Parse, also returning the line of every path present in the file.
func parse(name string, data []byte) (*Config, map[string]int, error) {
	d := &decoder{file: name, lines: map[string]int{}}
	var c Config
	root, err := parseYAML(data)
	if err != nil {
		return nil, nil, ConfigErrors{syntaxError(name, data, err)}
	}
	if root != nil {
		d.lines[""] = root.Line
		d.decode(root, reflect.ValueOf(&c).Elem(), "")
	}
	if len(d.errs) == 0 {
		c.SetDefaults()
		for _, err := range leafErrors(c.Validate()) {
			d.errs = append(d.errs, d.placeError(err))
		}
	}
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
		// A mapping merged in twice reports its own problems twice.
		errs := ConfigErrors{d.errs[0]}
		for _, e := range d.errs[1:] {
			if *e != *errs[len(errs)-1] {
				errs = append(errs, e)
			}
		}
		return nil, d.lines, errs
	}
	return &c, d.lines, nil
}

// parseYAML returns the content of the file's only document, or nil when there is none or
// it is null.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("yaml: line %d: a second YAML document; the file must hold one", next.Line)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	return root, nil
}

var (
	yamlLineRE   = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)
	yamlAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// parserProblems are the messages of go.yaml.in/yaml/v3's parser (parserc.go), which gives
// their line 0-based; its scanner's (scannerc.go) come 1-based.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxError places a YAML parser error. The parser leaves out the line when it is the
// first, and always for an unknown anchor, which is looked for in data.
func syntaxError(file string, data []byte, err error) *ConfigError {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserProblems[m[2]] {
			line++
		}
		return &ConfigError{File: file, Line: line, Msg: m[2]}
	}
	line := 1
	if m := yamlAnchorRE.FindStringSubmatch(msg); m != nil {
		for i, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, "*"+m[1]) {
				line = i + 1
				break
			}
		}
	}
	return &ConfigError{File: file, Line: line, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// placeError turns a validation error into a ConfigError at the line of its field, or of
// the field's deepest ancestor present in the file when the field itself is not.
func (d *decoder) placeError(err error) *ConfigError {
	fe, ok := err.(interface{ FieldPath() string })
	if !ok {
		return &ConfigError{File: d.file, Msg: err.Error()}
	}
	path := fe.FieldPath()
	msg := strings.TrimPrefix(err.Error(), path+": ")
	for p := path; ; p = parentPath(p) {
		if line, ok := d.lines[p]; ok {
			return &ConfigError{File: d.file, Line: line, Path: path, Msg: msg}
		}
		if p == "" {
			return &ConfigError{File: d.file, Path: path, Msg: msg}
		}
	}
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// decoder walks a yaml.Node tree against Go types, recording errors and where each path is.
type decoder struct {
	file      string
	errs      []*ConfigError
	lines     map[string]int      // path → line of its key or list item
	expanding map[*yaml.Node]bool // anchors being expanded, to stop at a cycle
	aliases   int                 // aliases followed, against maxAliases
}

// maxAliases bounds the aliases followed in one file, so that a few lines of aliases of
// aliases cannot make an exponential amount of work ("billion laughs").
const maxAliases = 10000

// follow returns what alias n refers to, or false (and records an error) when n refers to
// an anchor that contains it. The caller must call d.unfollow(n) when done.
func (d *decoder) follow(n *yaml.Node, path string) (*yaml.Node, bool) {
	if d.expanding[n.Alias] {
		d.errorf(n, path, "alias *%s refers to its own anchor", n.Value)
		return nil, false
	}
	if d.aliases++; d.aliases > maxAliases {
		if d.aliases == maxAliases+1 {
			// At the line of the value being expanded, not of the alias deep inside it.
			at := n
			if line, ok := d.lines[path]; ok {
				at = &yaml.Node{Line: line}
			}
			d.errorf(at, path, "more than %d aliases followed; the file expands too much", maxAliases)
		}
		return nil, false
	}
	if d.expanding == nil {
		d.expanding = map[*yaml.Node]bool{}
	}
	d.expanding[n.Alias] = true
	return n.Alias, true
}

func (d *decoder) unfollow(n *yaml.Node) { delete(d.expanding, n.Alias) }

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decode stores n in v, which is settable.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		if target, ok := d.follow(n, path); ok {
			d.decode(target, v, path)
			d.unfollow(n)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value, for SetDefaults
	}
	t := v.Type()
	if reflect.PointerTo(t).Implements(yamlUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, path, "%s", describeDecodeError(n, t.Name(), err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		if d.expect(n, yaml.MappingNode, path, "a mapping") {
			d.decodeStruct(n, v, path)
		}
	case reflect.Slice:
		if !d.expect(n, yaml.SequenceNode, path, "a list") || len(n.Content) == 0 {
			return // an empty list is the same as none
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Interface:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, path, "%v", err)
		}
	default:
		d.decodeScalar(n, v, path)
	}
}

// expect reports whether n is of kind, and records an error if it is not.
func (d *decoder) expect(n *yaml.Node, kind yaml.Kind, path, want string) bool {
	if n.Kind == kind {
		return true
	}
	if path == "" {
		d.errorf(n, path, "the file must be a mapping of keys such as node, frontends and backends, not %s", describeNode(n))
	} else {
		d.errorf(n, path, "cannot use %s as %s", describeNode(n), want)
	}
	return false
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return describeNode(n.Alias)
	}
	return strconv.Quote(n.Value)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	want := map[reflect.Kind]string{
		reflect.Bool: "a boolean", reflect.String: "a string",
		reflect.Float32: "a number", reflect.Float64: "a number",
	}[v.Kind()]
	if want == "" {
		want = "an integer"
	}
	if v.Type() == durationType {
		want = "a duration"
	}
	if !d.expect(n, yaml.ScalarNode, path, want) {
		return
	}
	if want == "an integer" && n.Tag == "!!float" {
		d.errorf(n, path, "cannot use %q as an integer", n.Value)
		return
	}
	if v.Type() == durationType {
		if n.Tag == "!!int" || n.Tag == "!!float" {
			d.errorf(n, path, "cannot use %q as a duration: it needs a unit, such as \"%ss\"", n.Value, n.Value)
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.errorf(n, path, "cannot use %q as a duration, such as \"500ms\", \"2s\" or \"1m30s\"", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil {
		d.errorf(n, path, "cannot use %q as %s", n.Value, want)
		return
	}
	v.Set(p.Elem())
}

func describeDecodeError(n *yaml.Node, typeName string, err error) string {
	msg := err.Error()
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	return fmt.Sprintf("cannot use %s as %s: %s", describeNode(n), typeName, strings.TrimPrefix(msg, "yaml: "))
}

// mapEntry is one key and value of a YAML mapping, after merge keys are resolved.
type mapEntry struct {
	key, value *yaml.Node
}

// entries returns the pairs of mapping n, with the keys of its "<<" merges that n does not
// set itself, and reports duplicate keys.
func (d *decoder) entries(n *yaml.Node, path string) []mapEntry {
	var out []mapEntry
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "cannot use %s as a key", describeNode(k))
			continue
		}
		if first, ok := seen[k.Value]; ok {
			d.errorf(k, joinPath(path, k.Value), "duplicate key %q (first on line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, mapEntry{k, val})
	}
	// Merged keys: n's own win, then earlier merges over later ones.
	var merge func(m *yaml.Node)
	merge = func(m *yaml.Node) {
		if m.Kind == yaml.AliasNode {
			target, ok := d.follow(m, path)
			if !ok {
				return
			}
			defer d.unfollow(m)
			m = target
		}
		switch m.Kind {
		case yaml.MappingNode:
			for _, e := range d.entries(m, path) {
				if _, ok := seen[e.key.Value]; !ok {
					seen[e.key.Value] = e.key.Line
					out = append(out, e)
				}
			}
		case yaml.SequenceNode:
			for _, item := range m.Content {
				merge(item)
			}
		default:
			d.errorf(m, path, "cannot merge %s: \"<<\" takes a mapping or a list of mappings", describeNode(m))
		}
	}
	for _, m := range merges {
		merge(m)
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	fields := structFields(v.Type())
	for _, e := range d.entries(n, path) {
		key := e.key.Value
		p := joinPath(path, key)
		f, ok := fields.byKey[key]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", key)
			if s := suggest(key, fields.keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(e.key, p, "%s", msg)
			continue
		}
		d.lines[p] = e.key.Line
		d.decode(e.value, v.FieldByIndex(f), p)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if !d.expect(n, yaml.MappingNode, path, "a mapping") {
		return
	}
	t := v.Type()
	m := reflect.MakeMap(t)
	for _, e := range d.entries(n, path) {
		p := joinPath(path, e.key.Value)
		k := reflect.New(t.Key()).Elem()
		d.decode(e.key, k, p)
		val := reflect.New(t.Elem()).Elem()
		d.lines[p] = e.key.Line
		d.decode(e.value, val, p)
		m.SetMapIndex(k, val)
	}
	v.Set(m)
}

// fieldSet is the YAML keys of a struct type, inline fields flattened.
type fieldSet struct {
	keys  []string         // in field order
	byKey map[string][]int // key → field index for FieldByIndex
}

func structFields(t reflect.Type) fieldSet {
	fs := fieldSet{byKey: map[string][]int{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			key, inline, ok := yamlKey(f)
			if !ok {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			if inline {
				walk(f.Type, idx)
				continue
			}
			fs.keys = append(fs.keys, key)
			fs.byKey[key] = idx
		}
	}
	walk(t, nil)
	return fs
}

// yamlKey returns a field's key as go.yaml.in/yaml/v3 names it, whether it is inline, and
// whether it is in the YAML at all.
func yamlKey(f reflect.StructField) (key string, inline, ok bool) {
	tag := f.Tag.Get("yaml")
	if tag == "-" || (!f.IsExported() && !(f.Anonymous && strings.Contains(tag, ",inline"))) {
		return "", false, false
	}
	name, opts, _ := strings.Cut(tag, ",")
	for _, o := range strings.Split(opts, ",") {
		if o == "inline" && f.Type.Kind() == reflect.Struct {
			return "", true, true
		}
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, false, true
}

// suggest returns the known key closest to key, if within an edit distance of 2.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
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
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
