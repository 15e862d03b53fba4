package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest document and where it came from.
type object struct {
	where string // file#document
	kind  string
	value any // a pointer to a k8s.io/api type
}

// newObject returns an empty value of the API type of apiVersion/kind: the kinds these manifests may hold.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, true
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	}
	return nil, false
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// kustomization is the part of kustomization.yaml the checker reads (kustomize's own type is not needed).
type kustomization struct {
	Resources []string `json:"resources"`
}

// load decodes every resource of dir's kustomization.yaml strictly (an unknown or misspelt field, a duplicate
// key, a value of the wrong type or an unparsable quantity is an error), checks the required fields against
// the OpenAPI document when there is one, and reports YAML files of dir that the kustomization leaves out.
func load(dir string, spec *openAPI) ([]object, []string) {
	var problems []string
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, []string{err.Error()}
	}
	var kust kustomization
	if err := yaml.Unmarshal(raw, &kust); err != nil {
		return nil, []string{fmt.Sprintf("kustomization.yaml: %v", err)}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, file := range files {
		name := filepath.Base(file)
		if name != "kustomization.yaml" && !slices.Contains(kust.Resources, name) {
			problems = append(problems, fmt.Sprintf("%s: not listed in kustomization.yaml's resources", name))
		}
	}
	var objects []object
	for _, name := range kust.Resources {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			problems = append(problems, fmt.Sprintf("kustomization.yaml resource %s: %v", name, err))
			continue
		}
		for index, doc := range documentSeparator.Split(string(raw), -1) {
			where := fmt.Sprintf("%s#%d", name, index+1)
			obj, missing, err := decode([]byte(doc), spec)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			}
			for _, field := range missing {
				problems = append(problems, fmt.Sprintf("%s: %s", where, field))
			}
			if obj != nil {
				obj.where = where
				objects = append(objects, *obj)
			}
		}
	}
	return objects, problems
}

// decode returns the typed object of one document (nil for a document of comments only) and the required
// fields it lacks according to spec (none checked when spec is nil).
func decode(doc []byte, spec *openAPI) (*object, []string, error) {
	if strings.TrimSpace(stripComments(string(doc))) == "" {
		return nil, nil, nil
	}
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return nil, nil, err
	}
	var missing []string
	if spec != nil {
		var err error
		if missing, err = spec.missingRequired(doc, meta.APIVersion, meta.Kind); err != nil {
			return nil, nil, err
		}
	}
	obj, err := decodeTyped(doc, meta)
	return obj, missing, err
}

func decodeTyped(doc []byte, meta metav1.TypeMeta) (*object, error) {
	value, known := newObject(meta.APIVersion, meta.Kind)
	if !known {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a kind these manifests may hold", meta.APIVersion, meta.Kind)
	}
	// As the API server decodes: duplicate keys refused, then field names matched case-sensitively (encoding/json
	// would take clusterIp for clusterIP) with every unknown or duplicate field reported, not just the first.
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", meta.Kind, err)
	}
	strict, err := kjson.UnmarshalStrict(data, value)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", meta.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %v", meta.Kind, errors.Join(strict...))
	}
	return &object{kind: meta.Kind, value: value}, nil
}

func stripComments(text string) string {
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}
