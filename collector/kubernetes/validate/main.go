// Command otel-llm-k8s-check checks otel-llm's Kubernetes manifests offline, with no cluster and no schema
// download: every resource of DIR/kustomization.yaml is decoded strictly into its k8s.io/api type (an unknown or
// misspelt field, a duplicate key, a wrong type or an unparsable quantity fails), its required fields are
// checked against Kubernetes' OpenAPI document (-openapi, openapi.go), then the invariants the collector tiers
// rely on are checked (checks.go): selectors select their pods, Services target declared ports, the agents' DNS
// name is a headless Service of the gateways, each --config file is a key of a mounted ConfigMap, probes ask the
// health_check port of those configs, memory_limiter sits below the memory limit, a PodDisruptionBudget lets a
// drain proceed.
//
// Usage: otel-llm-k8s-check [-openapi swagger.json] DIR
// (exit 0: "ok" and the objects checked; exit 1: one line per problem; exit 2: bad usage or OpenAPI document)
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	openAPIFile := flag.String("openapi", "", "Kubernetes' api/openapi-spec/swagger.json: checks required "+
		"fields (without it they are not checked)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: otel-llm-k8s-check [-openapi swagger.json] DIR (a directory holding "+
			"kustomization.yaml)")
		os.Exit(2)
	}
	var spec *openAPI
	required := "required fields not checked (no -openapi)"
	if *openAPIFile != "" {
		var err error
		if spec, err = loadOpenAPI(*openAPIFile); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		required = "required fields checked"
	}
	objects, problems := load(flag.Arg(0), spec)
	problems = append(problems, check(objects)...)
	for _, problem := range problems {
		fmt.Println(problem)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Printf("ok: %d objects, %s\n", len(objects), required)
}
