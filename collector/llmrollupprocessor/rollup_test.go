package llmrollupprocessor

import (
	"reflect"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

const (
	server       = ptrace.SpanKindServer
	producer     = ptrace.SpanKindProducer
	consumerKind = ptrace.SpanKindConsumer
	internal     = ptrace.SpanKindInternal
	client       = ptrace.SpanKindClient
)

// twoServices is an API root, its queue producer, a worker's CONSUMER entry span, a graph span, and two LLM
// calls: one with GenAI attributes, one with OpenLLMetry's (a Bedrock model id).
func twoServices(extraRoot map[string]any) ptrace.Traces {
	root := map[string]any{"http.route": "/chat"}
	for key, value := range extraRoot {
		root[key] = value
	}
	return build(traceID(1),
		spec{id: 1, service: "api", name: "POST /chat", kind: server, start: 0, end: 3, attrs: root},
		spec{id: 2, parent: 1, service: "api", name: "publish", kind: producer, start: 1, end: 2},
		spec{id: 3, parent: 2, service: "worker", name: "process", kind: consumerKind, start: 100, end: 2100},
		spec{id: 4, parent: 3, service: "worker", name: "graph", kind: internal, start: 110, end: 2090},
		spec{id: 5, parent: 4, service: "worker", name: "chat gpt-4o", kind: client, start: 200, end: 1200,
			attrs: chat("openai", "gpt-4o", 10, 5)},
		spec{id: 6, parent: 4, service: "worker", name: "bedrock.chat", kind: client, start: 1000, end: 2000,
			attrs: map[string]any{"llm.request.type": "chat", "gen_ai.system": "AWS",
				"gen_ai.request.model": "anthropic.claude-3-haiku-20240307-v1:0", "gen_ai.usage.prompt_tokens": 7,
				"gen_ai.usage.completion_tokens": 3}, failed: true},
	)
}

// TestRollUpAcrossServices: the root and the worker's entry span carry every call; spans between do not.
func TestRollUpAcrossServices(t *testing.T) {
	td := twoServices(nil)
	outcome := rollUpTraces(mustRules(t), td, false)
	spans := spansByName(td)
	if outcome.calls != 2 {
		t.Fatalf("calls %d", outcome.calls)
	}
	for _, name := range []string{"POST /chat", "process"} {
		span := spans[name]
		want := map[string]any{
			"llm.rollup.provider": "aws.bedrock,openai", "llm.rollup.model": "anthropic.claude-3-haiku-20240307-v1:0,gpt-4o",
			"llm.rollup.calls": int64(2), "llm.rollup.input_tokens": int64(17), "llm.rollup.output_tokens": int64(8),
			"llm.rollup.error_calls": int64(1), "llm.rollup.error": true,
			"llm.rollup.providers": []any{"aws.bedrock", "openai"},
		}
		for key, value := range want {
			if got := attr(t, span, key); !reflect.DeepEqual(got, value) {
				t.Errorf("%s %s = %v, want %v", name, key, got, value)
			}
		}
	}
	for _, name := range []string{"graph", "publish"} {
		if got := attr(t, spans[name], "llm.rollup.calls"); got != nil {
			t.Errorf("%s got a roll-up: %v", name, got)
		}
	}
	if got := attr(t, spans["bedrock.chat"], "gen_ai.provider.name"); got != "aws.bedrock" {
		t.Errorf("OpenLLMetry span not normalised: %v", got)
	}
}

// TestEndToEndFacts: the root gets the request's whole duration, services, LLM time and share.
func TestEndToEndFacts(t *testing.T) {
	td := twoServices(nil)
	rollUpTraces(mustRules(t), td, false)
	root := spansByName(td)["POST /chat"]
	want := map[string]any{
		"llm.trace.duration_ms": 2100.0, "llm.trace.llm_duration_ms": 1800.0, "llm.trace.llm_share": 1800.0 / 2100.0,
		"llm.trace.services": []any{"api", "worker"}, "llm.trace.span_count": int64(6),
	}
	for key, value := range want {
		if got := attr(t, root, key); !reflect.DeepEqual(got, value) {
			t.Errorf("%s = %v, want %v", key, got, value)
		}
	}
	if root.EndTimestamp() != ts(3) {
		t.Error("the root's own timing changed")
	}
}

// TestRequestSpan: a child of the root spanning the whole request, with the roll-up and arm, same id each time.
func TestRequestSpan(t *testing.T) {
	arm := map[string]any{"llm.experiment.arm": "openai:gpt-4o", "llm.experiment.id": "exp1"}
	td := twoServices(arm)
	rollUpTraces(mustRules(t), td, true)
	spans := spansByName(td)
	request, root := spans["llm.request"], spans["POST /chat"]
	if request.ParentSpanID() != root.SpanID() || request.TraceID() != root.TraceID() {
		t.Fatal("llm.request is not the root's child")
	}
	if request.StartTimestamp() != ts(0) || request.EndTimestamp() != ts(2100) {
		t.Fatalf("llm.request timing %v-%v", request.StartTimestamp(), request.EndTimestamp())
	}
	for _, key := range []string{"llm.rollup.provider", "llm.rollup.model", "llm.experiment.arm", "llm.trace.duration_ms"} {
		if !reflect.DeepEqual(attr(t, request, key), attr(t, root, key)) || attr(t, request, key) == nil {
			t.Errorf("llm.request %s = %v, root %v", key, attr(t, request, key), attr(t, root, key))
		}
	}
	again := twoServices(arm)
	rollUpTraces(mustRules(t), again, true)
	if spansByName(again)["llm.request"].SpanID() != request.SpanID() {
		t.Error("llm.request span id is not deterministic")
	}
	plain := build(traceID(2), spec{id: 1, service: "api", name: "GET /health", kind: server, end: 1})
	rollUpTraces(mustRules(t), plain, true)
	if plain.SpanCount() != 1 || attr(t, spansByName(plain)["GET /health"], "llm.trace.duration_ms") != nil {
		t.Error("a trace without LLM calls got a request span or facts")
	}
	lone := build(traceID(3), spec{id: 1, service: "batch", name: "chat", kind: client, end: 5,
		attrs: chat("openai", "gpt-4o", 1, 1)})
	rollUpTraces(mustRules(t), lone, true)
	if lone.SpanCount() != 1 || attr(t, spansByName(lone)["chat"], "llm.rollup.calls") != nil {
		t.Error("a lone LLM span (its own request) got a request span or a roll-up")
	}
}

// TestFallback: the arm assigned on the root against the models used anywhere in the trace.
func TestFallback(t *testing.T) {
	for _, tc := range []struct {
		arm  map[string]any
		want any
	}{
		{map[string]any{"llm.experiment.arm": "openai:gpt-4o-mini"}, true},
		{map[string]any{"llm.experiment.provider": "anthropic", "llm.experiment.model": "gpt-4o"}, true},
		{map[string]any{"llm.experiment.arm": "openai:gpt-4o"}, nil},
		{map[string]any{"llm.experiment.arm": "Bedrock:anthropic.claude-3-haiku-20240307-v1:0"}, nil},
		{map[string]any{"llm.experiment.arm": "not-an-arm"}, nil},
		{nil, nil},
	} {
		td := twoServices(tc.arm)
		outcome := rollUpTraces(mustRules(t), td, false)
		if got := attr(t, spansByName(td)["POST /chat"], "llm.experiment.fallback"); got != tc.want || outcome.fallback != (tc.want == true) {
			t.Errorf("arm %v: fallback %v (outcome %v), want %v", tc.arm, got, outcome.fallback, tc.want)
		}
	}
}

// TestNestedAndAlreadyRolledUp: an LLM span wrapping another counts once; an SDK roll-up is not added again.
func TestNestedAndAlreadyRolledUp(t *testing.T) {
	sdkRollup := map[string]any{"llm.rollup.calls": 1, "llm.rollup.provider": "aws.bedrock", "llm.rollup.model": "m"}
	td := build(traceID(3),
		spec{id: 1, service: "worker", name: "process", kind: consumerKind, end: 100, attrs: sdkRollup},
		spec{id: 2, parent: 1, service: "worker", name: "ChatBedrock", start: 1, end: 90,
			attrs: map[string]any{"langsmith.span.kind": "llm", "langsmith.metadata.ls_provider": "amazon_bedrock",
				"langsmith.metadata.ls_model_name": "m", "gen_ai.usage.input_tokens": 4}},
		spec{id: 3, parent: 2, service: "worker", name: "bedrock converse", kind: client, start: 2, end: 80,
			attrs: chat("aws.bedrock", "m", 4, 1)},
	)
	rollUpTraces(mustRules(t), td, false)
	process := spansByName(td)["process"]
	if calls := attr(t, process, "llm.rollup.calls"); calls != int64(1) {
		t.Fatalf("calls %v, want 1", calls)
	}
	if tokens := attr(t, process, "llm.rollup.input_tokens"); tokens != int64(4) {
		t.Fatalf("input tokens %v, want 4", tokens)
	}
}

// TestMalformedTraces: cycles, missing parents, no root, duplicate ids and odd values end without a panic.
func TestMalformedTraces(t *testing.T) {
	r := mustRules(t)
	cycle := build(traceID(4),
		spec{id: 1, parent: 2, service: "a", name: "x", kind: server, attrs: chat("openai", "gpt-4o", 1, 1)},
		spec{id: 2, parent: 3, service: "a", name: "y", attrs: chat("openai", "gpt-4o", 1, 1)},
		spec{id: 3, parent: 1, service: "a", name: "z"},
		spec{id: 3, parent: 3, service: "a", name: "self"},
	)
	rollUpTraces(r, cycle, true)
	if cycle.SpanCount() != 4 {
		t.Error("a cyclic trace got a request span (it has no root)")
	}

	missing := build(traceID(5),
		spec{id: 1, service: "api", name: "root", kind: server, end: 10},
		spec{id: 3, parent: 99, service: "worker", name: "orphan", kind: consumerKind, start: 5, end: 50},
		spec{id: 4, parent: 98, service: "worker", name: "lost-llm", start: 6, end: 40, attrs: chat("openai", "o1", 1, 2)},
	)
	rollUpTraces(r, missing, false)
	spans := spansByName(missing)
	if attr(t, spans["root"], "llm.rollup.calls") != int64(1) {
		t.Error("an LLM span under a missing parent did not reach the root")
	}
	if attr(t, spans["orphan"], "llm.rollup.calls") != nil {
		t.Error("an unrelated entry span got a roll-up")
	}

	noRoot := build(traceID(6),
		spec{id: 3, parent: 99, service: "worker", name: "entry", kind: consumerKind, end: 50},
		spec{id: 4, parent: 3, service: "worker", name: "llm", attrs: chat("groq", "llama", 1, 2)},
	)
	rollUpTraces(r, noRoot, true)
	spans = spansByName(noRoot)
	if attr(t, spans["entry"], "llm.rollup.provider") != "groq" || noRoot.SpanCount() != 2 {
		t.Error("without a root, the entry span should still get the roll-up and no request span be added")
	}

	odd := build(traceID(7), spec{id: 1, service: "api", name: "root", kind: server},
		spec{id: 2, parent: 1, service: "api", name: "llm"})
	attrs := spansByName(odd)["llm"].Attributes()
	attrs.PutStr("gen_ai.operation.name", "chat")
	attrs.PutStr("gen_ai.request.model", strings.Repeat("m", 1<<20))
	attrs.PutEmptyMap("gen_ai.provider.name").PutStr("k", "v")
	attrs.PutEmptyBytes("gen_ai.usage.input_tokens").FromRaw([]byte("12"))
	attrs.PutDouble("gen_ai.usage.output_tokens", 1e300)
	rollUpTraces(r, odd, false)
	root := spansByName(odd)["root"]
	if model := attr(t, spansByName(odd)["llm"], "gen_ai.request.model").(string); len(model) != 128 {
		t.Errorf("model not capped: %d", len(model))
	}
	if attr(t, root, "llm.rollup.input_tokens") != int64(12) || attr(t, root, "llm.rollup.output_tokens") != nil {
		t.Errorf("tokens %v %v", attr(t, root, "llm.rollup.input_tokens"), attr(t, root, "llm.rollup.output_tokens"))
	}
	rollUpTraces(r, ptrace.NewTraces(), true)
}

// TestHundredThousandSpans: a 10^5-span chain with an LLM call at the bottom rolls up in linear time.
func TestHundredThousandSpans(t *testing.T) {
	const n = 100000
	specs := make([]spec, 0, n)
	specs = append(specs, spec{id: 1, service: "api", name: "root", kind: server, end: n})
	for i := uint64(2); i < n; i++ {
		specs = append(specs, spec{id: i, parent: i - 1, service: "api", name: "step", start: int64(i), end: int64(i) + 1})
	}
	specs = append(specs, spec{id: n, parent: n - 1, service: "api", name: "llm", attrs: chat("openai", "gpt-4o", 1, 1)})
	td := build(traceID(8), specs...)
	rollUpTraces(mustRules(t), td, true)
	if attr(t, spansByName(td)["root"], "llm.rollup.calls") != int64(1) {
		t.Fatal("the call at depth 10^5 did not reach the root")
	}
}

// TestRollupValuesBounded: more distinct models than the limit become the overflow value.
func TestRollupValuesBounded(t *testing.T) {
	r := mustRules(t)
	specs := []spec{{id: 1, service: "api", name: "root", kind: server}}
	for i := uint64(0); i < 40; i++ {
		specs = append(specs, spec{id: 10 + i, parent: 1, service: "api", name: "c", attrs: chat("openai", "m"+string(rune('A'+i)), 1, 1)})
	}
	td := build(traceID(9), specs...)
	rollUpTraces(r, td, false)
	models := attr(t, spansByName(td)["root"], "llm.rollup.models").([]any)
	if len(models) != r.MaxRollupValues || models[len(models)-1] != r.RollupOverflowValue {
		t.Fatalf("models %v", models)
	}
	if attr(t, spansByName(td)["root"], "llm.rollup.calls") != int64(40) {
		t.Fatal("calls not counted past the value bound")
	}
}
