package node

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The configuration reference, docs/configuration.md, describes each key in a table row
// whose first cell is the key's path in backquotes, lists written as [] and keys of a map
// as *: | `frontends[].timeouts.client_idle` | duration | ... |. These tests keep it true:
// every key of Config has its row, every row names a key of Config, and every yaml
// example in it is a valid config.

const docPath = "../docs/configuration.md"

// keyPaths returns the path of every key of the file, in schema order.
func keyPaths() []string {
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == durationType || reflect.PointerTo(t).Implements(yamlUnmarshalerType) ||
			reflect.PointerTo(t).Implements(textUnmarshalerType) {
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			fs := structFields(t)
			for _, k := range fs.keys {
				p := joinPath(path, k)
				out = append(out, p)
				walk(t.FieldByIndex(fs.byKey[k]).Type, p)
			}
		case reflect.Slice:
			walk(t.Elem(), path+"[]")
		case reflect.Map:
			walk(t.Elem(), path+".*")
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDocCoversEveryKey(t *testing.T) {
	doc := readDoc(t)
	keys := keyPaths()
	if len(keys) < 10 {
		t.Fatalf("keyPaths() = %q: the schema walk found too little", keys)
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
		if !strings.Contains(doc, "| `"+k+"`") {
			t.Errorf("%s has no row for key `%s`", docPath, k)
		}
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`([^`]+)`\\s*\\|")
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		if !known[m[1]] {
			t.Errorf("%s has a row for `%s`, which is not a key of the config file", docPath, m[1])
		}
	}
}

func TestDocExamplesAreValid(t *testing.T) {
	fakeHostname(t)
	doc := readDoc(t)
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	examples := block.FindAllStringSubmatch(doc, -1)
	if len(examples) == 0 {
		t.Fatalf("%s has no ```yaml example", docPath)
	}
	for i, m := range examples {
		c, err := Parse("example.yaml", []byte(m[1]))
		if err != nil {
			t.Errorf("yaml example %d of %s:\n%v", i+1, docPath, err)
			continue
		}
		if i == 0 && (len(c.Frontends) == 0 || len(c.Backends) == 0) {
			t.Errorf("the first example of %s should be a full config with frontends and backends", docPath)
		}
	}
}
