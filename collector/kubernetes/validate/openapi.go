package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// The Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json of the k8s.io/kubernetes module of the
// release k8s.io/api is pinned to) adds what typed decoding cannot see: the fields each object must have.
// Only `required` is read: field names and types are the typed decoding's (decode.go), and the document lists
// no enums.

type openAPISchema struct {
	Ref        string                    `json:"$ref"`
	Required   []string                  `json:"required"`
	Properties map[string]*openAPISchema `json:"properties"`
	Items      *openAPISchema            `json:"items"`
	GVK        []struct {
		Group   string `json:"group"`
		Version string `json:"version"`
		Kind    string `json:"kind"`
	} `json:"x-kubernetes-group-version-kind"`
}

type openAPI struct {
	Definitions map[string]*openAPISchema `json:"definitions"`
}

const definitionPrefix = "#/definitions/"

func loadOpenAPI(file string) (*openAPI, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc openAPI
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if len(doc.Definitions) == 0 {
		return nil, fmt.Errorf("%s: no definitions: not a Kubernetes OpenAPI v2 document", file)
	}
	return &doc, nil
}

// definition returns the schema of apiVersion/kind, nil when the document has none.
func (o *openAPI) definition(apiVersion, kind string) *openAPISchema {
	group, version, found := strings.Cut(apiVersion, "/")
	if !found {
		group, version = "", apiVersion
	}
	for _, schema := range o.Definitions {
		for _, gvk := range schema.GVK {
			if gvk.Group == group && gvk.Version == version && gvk.Kind == kind {
				return schema
			}
		}
	}
	return nil
}

// missingRequired returns one line per required field absent from the document, by its path.
func (o *openAPI) missingRequired(doc []byte, apiVersion, kind string) ([]string, error) {
	schema := o.definition(apiVersion, kind)
	if schema == nil {
		return []string{fmt.Sprintf("%s %s: not in the OpenAPI document", apiVersion, kind)}, nil
	}
	var value any
	if err := yaml.Unmarshal(doc, &value); err != nil {
		return nil, err
	}
	var missing []string
	o.walk(kind, schema, value, &missing)
	return missing, nil
}

func (o *openAPI) walk(path string, schema *openAPISchema, value any, missing *[]string) {
	for schema != nil && schema.Ref != "" {
		schema = o.Definitions[strings.TrimPrefix(schema.Ref, definitionPrefix)]
	}
	if schema == nil {
		return
	}
	switch v := value.(type) {
	case map[string]any:
		for _, field := range schema.Required {
			if _, ok := v[field]; !ok {
				*missing = append(*missing, fmt.Sprintf("%s: missing required field %q", path, field))
			}
		}
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		for _, key := range keys {
			o.walk(path+"."+key, schema.Properties[key], v[key], missing)
		}
	case []any:
		for index, item := range v {
			o.walk(fmt.Sprintf("%s[%d]", path, index), schema.Items, item, missing)
		}
	}
}
