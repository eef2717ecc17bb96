package k8sobj

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// ObjectMeta holds the metadata fields the testbed understands, declared in
// the order of metav1.ObjectMeta so encoding/json renders them in the order
// kube-apiserver does. Unknown metadata fields are dropped.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	GenerateName      string            `json:"generateName,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	SelfLink          string            `json:"selfLink,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp *string           `json:"creationTimestamp"` // null when unset, like metav1.Time
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// RawField is a top-level field other than kind/apiVersion/metadata, kept as
// compact JSON in its original order.
type RawField struct {
	Name  string
	Value json.RawMessage
}

// Object is a parsed stored value.
type Object struct {
	Kind       string
	APIVersion string
	Meta       ObjectMeta
	Rest       []RawField
}

// Parse decodes a JSON object value as stored in etcd.
func Parse(value []byte) (*Object, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("object: value is not a JSON object")
	}
	o := &Object{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("object field %q: %w", name, err)
		}
		switch name {
		case "kind":
			err = json.Unmarshal(raw, &o.Kind)
		case "apiVersion":
			err = json.Unmarshal(raw, &o.APIVersion)
		case "metadata":
			err = json.Unmarshal(raw, &o.Meta)
		default:
			var buf bytes.Buffer
			if err = json.Compact(&buf, raw); err == nil {
				o.Rest = append(o.Rest, RawField{Name: name, Value: buf.Bytes()})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("object field %q: %w", name, err)
		}
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return nil, err
	}
	return o, nil
}

// WithRV returns a shallow copy with metadata.resourceVersion set. Maps are
// shared: objects are never mutated after parsing.
func (o *Object) WithRV(rv int64) *Object {
	c := *o
	c.Meta.ResourceVersion = strconv.FormatInt(rv, 10)
	return &c
}

// Empty returns the object kube-apiserver puts in a BOOKMARK: only kind,
// apiVersion and metadata.resourceVersion.
func Empty(r Resource, rv int64) *Object {
	return &Object{Kind: r.Kind, APIVersion: r.APIVersion(), Meta: ObjectMeta{ResourceVersion: strconv.FormatInt(rv, 10)}}
}

// InitialEventsEndAnnotation is set to "true" on the BOOKMARK that ends a
// watch-list's initial events (metav1.InitialEventsAnnotationKey).
const InitialEventsEndAnnotation = "k8s.io/initial-events-end"

// InitialEventsEnd returns that bookmark's object: Empty plus the
// annotation.
func InitialEventsEnd(r Resource, rv int64) *Object {
	o := Empty(r, rv)
	o.Meta.Annotations = map[string]string{InitialEventsEndAnnotation: "true"}
	return o
}

// Field returns the raw JSON of a top-level field, or nil.
func (o *Object) Field(name string) json.RawMessage {
	for _, f := range o.Rest {
		if f.Name == name {
			return f.Value
		}
	}
	return nil
}

// AppendJSON appends the compact JSON rendering: kind, apiVersion, metadata,
// then the other fields in stored order.
func (o *Object) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	comma := false
	str := func(name, v string) {
		if v == "" {
			return
		}
		if comma {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = appendJSONString(b, v)
		comma = true
	}
	str("kind", o.Kind)
	str("apiVersion", o.APIVersion)
	if comma {
		b = append(b, ',')
	}
	meta, _ := json.Marshal(&o.Meta) // cannot fail: strings and maps only
	b = append(b, `"metadata":`...)
	b = append(b, meta...)
	for _, f := range o.Rest {
		b = append(b, ',')
		b = appendJSONString(b, f.Name)
		b = append(b, ':')
		b = append(b, f.Value...)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string with encoding/json's escaping
// (HTML characters escaped), which is what kube-apiserver's encoder produces.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // strings always marshal
	return append(b, q...)
}
