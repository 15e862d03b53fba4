// Command otel-llm-k8s-check checks otel-llm's Kubernetes manifests offline, with no cluster and no schema
// download: every resource of DIR/kustomization.yaml is decoded strictly into its k8s.io/api type (an unknown or
// misspelt field, a duplicate key, a wrong type or an unparsable quantity fails), then the invariants the
// collector tiers rely on are checked (checks.go): selectors select their pods, Services target declared ports,
// the agents' DNS name is a headless Service of the gateways, each --config file is a key of a mounted ConfigMap,
// probes ask the health_check port of those configs, memory_limiter sits below the memory limit, a
// PodDisruptionBudget lets a drain proceed.
//
// Usage: otel-llm-k8s-check DIR   (exit 0: "ok" and the objects checked; exit 1: one line per problem)
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: otel-llm-k8s-check DIR (a directory holding kustomization.yaml)")
		os.Exit(2)
	}
	objects, problems := load(os.Args[1])
	problems = append(problems, check(objects)...)
	for _, problem := range problems {
		fmt.Println(problem)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Printf("ok: %d objects\n", len(objects))
}
