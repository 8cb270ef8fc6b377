package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// decode reads the configuration into c as Kubernetes components read
// theirs (apimachinery's strict serializer): keys are case-sensitive, and
// unknown or repeated keys are errors. problems are errors that still let
// the rest be decoded, so they are reported together with complete()'s;
// fatal means nothing could be read.
func decode(data []byte, c *Config) (problems []error, fatal error) {
	doc, err := oneDocument(data)
	if err != nil || doc == nil {
		return nil, err
	}
	// The conversion below keeps one of two repeated keys silently; the
	// strict conversion refuses them but names neither path nor all of
	// them, so when it does, find them in the parsed tree.
	if _, err := yaml.YAMLToJSONStrict(data); err != nil {
		if dups := duplicateKeys(doc.Content[0], ""); len(dups) > 0 {
			problems = append(problems, dups...)
		} else {
			problems = append(problems, cleanYAMLError(err))
		}
	}
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, cleanYAMLError(err)
	}
	strict, err := kjson.UnmarshalStrict(js, c)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		// sigs.k8s.io/json stops at the first wrong type and then drops its
		// strict errors; the other fields are decoded all the same.
		problems = append(problems, typeError(typeErr))
	case err != nil:
		return nil, cleanYAMLError(err)
	}
	for _, e := range strict {
		problems = append(problems, strictError(e))
	}
	return problems, nil
}

// oneDocument parses data and returns its first document, nil when there is
// none or it is empty. Any later document must be empty (a trailing ---):
// the YAML-to-JSON conversion reads only the first one, and anything else
// would be silently ignored.
func oneDocument(data []byte) (*yaml3.Node, error) {
	d := yaml3.NewDecoder(bytes.NewReader(data))
	var first *yaml3.Node
	for {
		var n yaml3.Node
		err := d.Decode(&n)
		switch {
		case errors.Is(err, io.EOF):
			if first != nil && emptyDocument(first) {
				return nil, nil
			}
			return first, nil
		case err != nil:
			return nil, err
		case first == nil:
			first = &n
		case !emptyDocument(&n):
			return nil, fmt.Errorf("more than one YAML document: another starts at line %d; coreguard reads a single document", n.Line)
		}
	}
}

// emptyDocument is a document with nothing written in it: `---` followed by
// nothing or comments only. An explicit null (~) counts as written.
func emptyDocument(n *yaml3.Node) bool {
	if len(n.Content) == 0 {
		return true
	}
	v := n.Content[0]
	return v.Kind == yaml3.ScalarNode && v.Tag == "!!null" && v.Value == ""
}

// duplicateKeys names every key repeated in a mapping, as a dotted path
// like sigs.k8s.io/json's strict errors.
func duplicateKeys(n *yaml3.Node, path string) []error {
	var errs []error
	switch n.Kind {
	case yaml3.MappingNode:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if seen[k.Value] {
				errs = append(errs, fmt.Errorf("duplicate field %q (line %d)", p, k.Line))
			}
			seen[k.Value] = true
			errs = append(errs, duplicateKeys(n.Content[i+1], p)...)
		}
	case yaml3.SequenceNode:
		for i, v := range n.Content {
			errs = append(errs, duplicateKeys(v, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return errs
}

// yamlToJSON converts YAML to JSON using the Config's field types, so that
// an unquoted scalar meant as a string stays one (`mode: off` is "false",
// `reservedSystemCPUs: 0` is "0") as it was before reading became strict.
// sigs.k8s.io/yaml does that only inside Unmarshal, which then decodes
// with encoding/json (case-insensitive); the option takes the converted
// JSON from that decoder and gives it nothing to decode.
func yamlToJSON(data []byte) ([]byte, error) {
	var js json.RawMessage
	var readErr error
	take := func(d *json.Decoder) *json.Decoder {
		readErr = d.Decode(&js)
		return json.NewDecoder(strings.NewReader("null"))
	}
	if err := yaml.Unmarshal(data, new(Config), take); err != nil {
		return nil, err
	}
	if readErr == nil && js == nil {
		readErr = errors.New("internal error: no JSON from the YAML conversion")
	}
	return js, readErr
}

// strictError is an unknown or duplicate field from sigs.k8s.io/json, with
// a hint when the key differs from a field only by case.
func strictError(err error) error {
	var fe kjson.FieldError
	if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "unknown field") {
		return err
	}
	if name := caseMatch(fe.FieldPath()); name != "" {
		return fmt.Errorf("%w (did you mean %q? keys are case-sensitive)", err, name)
	}
	return err
}

// caseMatch returns the field name that the last element of path (like
// "kernel.add[0].Name") matches when case is ignored, or "".
func caseMatch(path string) string {
	parts := strings.Split(path, ".")
	t := reflect.TypeFor[Config]()
	for i, part := range parts {
		name, _, _ := strings.Cut(part, "[")
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
		var next reflect.Type
		for j := range t.NumField() {
			f := t.Field(j)
			jn := jsonName(f)
			if i == len(parts)-1 && jn != name && strings.EqualFold(jn, name) {
				return jn
			}
			if jn == name {
				next = f.Type
			}
		}
		if next == nil {
			return ""
		}
		t = next
	}
	return ""
}

// jsonName is the key a struct field is read from, "" if none.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return f.Name
	}
	return name
}

// typeError says which field has a value of the wrong kind, in YAML's
// words. The path has no list indices: the JSON decoder keeps none.
func typeError(e *json.UnmarshalTypeError) error {
	field := e.Field
	if field == "" {
		field = "the document"
	}
	got, _, _ := strings.Cut(e.Value, " ") // "number -5" is "number"
	kinds := map[string]string{"object": "a mapping", "array": "a list", "string": "a string", "number": "a number", "bool": "a boolean", "null": "null"}
	if k, ok := kinds[got]; ok {
		got = k
	}
	return fmt.Errorf("%s: cannot unmarshal %s into %s", field, got, wantKind(e.Type))
}

// wantKind describes a Go type in YAML's words: "a list of strings".
func wantKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		switch e := t.Elem(); e.Kind() {
		case reflect.String:
			return "a list of strings"
		case reflect.Struct, reflect.Map:
			return "a list of mappings"
		}
		return "a list"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}
