package llmrollupprocessor

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// rules.json is generated from otel_llm/semconv.py by `python -m otel_llm.semconv_export --write`: attribute
// names, the provider alias table, the model-id rules and the LLM-span recognition values. A rule added on the
// Python side reaches this processor by regenerating the file; the precedence is code (normalize.go), proven
// equal to Python's by testdata/normalize_corpus.json.
//
//go:embed rules.json
var rulesJSON []byte

// names are the attribute names read and written, keyed as in rules.json's "names".
type names struct {
	ProviderName           string `json:"provider_name"`
	RequestModel           string `json:"request_model"`
	OperationName          string `json:"operation_name"`
	System                 string `json:"system"`
	LangsmithSpanKind      string `json:"langsmith_span_kind"`
	LangsmithLsProvider    string `json:"langsmith_ls_provider"`
	LangsmithLanggraphNode string `json:"langsmith_langgraph_node"`
	OpenllmetryRequestType string `json:"openllmetry_request_type"`
	ErrorType              string `json:"error_type"`
	LanggraphNode          string `json:"langgraph_node"`
	ExperimentID           string `json:"experiment_id"`
	ExperimentArm          string `json:"experiment_arm"`
	ExperimentProvider     string `json:"experiment_provider"`
	ExperimentModel        string `json:"experiment_model"`
	ExperimentFallback     string `json:"experiment_fallback"`
	RollupProvider         string `json:"rollup_provider"`
	RollupModel            string `json:"rollup_model"`
	RollupProviders        string `json:"rollup_providers"`
	RollupModels           string `json:"rollup_models"`
	RollupCalls            string `json:"rollup_calls"`
	RollupInputTokens      string `json:"rollup_input_tokens"`
	RollupOutputTokens     string `json:"rollup_output_tokens"`
	RollupErrorCalls       string `json:"rollup_error_calls"`
	RollupError            string `json:"rollup_error"`
	TraceDurationMs        string `json:"trace_duration_ms"`
	TraceLLMDurationMs     string `json:"trace_llm_duration_ms"`
	TraceLLMShare          string `json:"trace_llm_share"`
	TraceServices          string `json:"trace_services"`
	TraceSpanCount         string `json:"trace_span_count"`
	RequestSpan            string `json:"request_span"`
	ServiceName            string `json:"service_name"`
}

type modelRule struct {
	Pattern  string `json:"pattern"`
	Provider string `json:"provider"`
}

// ruleData is rules.json as written by the generator.
type ruleData struct {
	Names               names             `json:"names"`
	ModelSources        []string          `json:"model_sources"`
	InputTokenSources   []string          `json:"input_token_sources"`
	OutputTokenSources  []string          `json:"output_token_sources"`
	ProviderAliases     map[string]string `json:"provider_aliases"`
	ModelRules          []modelRule       `json:"model_rules"`
	BedrockProvider     string            `json:"bedrock_provider"`
	ProviderNameChars   string            `json:"provider_name_chars"`
	LLMOperations       []string          `json:"llm_operations"`
	LangsmithLLMKinds   []string          `json:"langsmith_llm_kinds"`
	FrameworkSystems    []string          `json:"framework_systems"`
	Unknown             string            `json:"unknown"`
	MaxProviderLength   int               `json:"max_provider_length"`
	MaxModelLength      int               `json:"max_model_length"`
	MaxNodeLength       int               `json:"max_node_length"`
	MaxRollupValues     int               `json:"max_rollup_values"`
	RollupOverflowValue string            `json:"rollup_overflow_value"`
	OtherErrorType      string            `json:"other_error_type"`
	DefaultExperimentID string            `json:"default_experiment_id"`
}

type compiledRule struct {
	pattern  *regexp.Regexp
	provider string
}

// rules is ruleData ready to use: sets as maps, patterns compiled.
type rules struct {
	ruleData
	modelRules    []compiledRule
	nonNameChars  *regexp.Regexp
	llmOperations map[string]bool
	llmKinds      map[string]bool
	frameworks    map[string]bool
}

// pythonWordClass is what Python's `\w` matches in a str pattern (any letter or digit, and `_`); RE2's `\w`
// is ASCII only.
const pythonWordClass = `\p{L}\p{N}_`

// toRE2 turns a pattern in Python `re` syntax, as semconv.py writes them, into RE2's: `\w` inside and outside
// a character class. Other constructs the rules use mean the same in both.
func toRE2(pattern string) string {
	var out strings.Builder
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern):
			next := pattern[i+1]
			i++
			if next == 'w' {
				if inClass {
					out.WriteString(pythonWordClass)
				} else {
					out.WriteString("[" + pythonWordClass + "]")
				}
				continue
			}
			out.WriteByte(c)
			out.WriteByte(next)
		case c == '[' && !inClass:
			inClass = true
			out.WriteByte(c)
		case c == ']' && inClass:
			inClass = false
			out.WriteByte(c)
		default:
			out.WriteByte(c)
		}
	}
	return out.String()
}

func set(values []string) map[string]bool {
	out := make(map[string]bool, len(values))
	for _, value := range values {
		out[value] = true
	}
	return out
}

// parseRules reads a rules file; an error names what is missing or does not compile.
func parseRules(data []byte) (*rules, error) {
	var parsed ruleData
	if err := json.Unmarshal(data, &parsed); err != nil {
		return nil, fmt.Errorf("rules.json: %w", err)
	}
	fields := reflect.ValueOf(parsed.Names)
	for i := 0; i < fields.NumField(); i++ {
		if fields.Field(i).String() == "" {
			return nil, fmt.Errorf("rules.json: names.%s is missing", fields.Type().Field(i).Tag.Get("json"))
		}
	}
	if len(parsed.ModelSources) == 0 || len(parsed.ProviderAliases) == 0 || parsed.MaxProviderLength < 1 ||
		parsed.MaxModelLength < 1 || parsed.MaxNodeLength < 1 || parsed.MaxRollupValues < 2 || parsed.Unknown == "" {
		return nil, fmt.Errorf("rules.json: model_sources, provider_aliases, the max_* lengths and unknown are required")
	}
	out := &rules{
		ruleData:      parsed,
		llmOperations: set(parsed.LLMOperations),
		llmKinds:      set(parsed.LangsmithLLMKinds),
		frameworks:    set(parsed.FrameworkSystems),
	}
	var err error
	if out.nonNameChars, err = regexp.Compile(parsed.ProviderNameChars); err != nil {
		return nil, fmt.Errorf("rules.json: provider_name_chars: %w", err)
	}
	for i, rule := range parsed.ModelRules {
		compiled, err := regexp.Compile("(?i)" + toRE2(rule.Pattern))
		if err != nil {
			return nil, fmt.Errorf("rules.json: model_rules[%d]: %w", i, err)
		}
		out.modelRules = append(out.modelRules, compiledRule{compiled, rule.Provider})
	}
	return out, nil
}

// embeddedRules parses the embedded rules.json once per factory use.
func embeddedRules() (*rules, error) {
	return parseRules(rulesJSON)
}
