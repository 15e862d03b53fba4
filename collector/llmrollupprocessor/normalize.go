package llmrollupprocessor

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The functions below are otel_llm.semconv's resolve_provider / resolve_model / is_llm_span / resolve_tokens
// and otel_llm.processors.normalize's node and error rules, over pdata values. Values are read the way Python
// reads the same attribute from an SDK span (str() of a number or bool, the first item of a sequence, Python's
// whitespace and int() rules), so both sides give the same answer for the same span
// (testdata/normalize_corpus.json). Two documented differences: a byte-string value is read as UTF-8 text, and
// a token count beyond int64 is ignored (Python would keep the big integer).

// lookup returns an attribute, treating an empty value like a missing one (Python's None).
func lookup(attrs pcommon.Map, key string) (pcommon.Value, bool) {
	value, ok := attrs.Get(key)
	if !ok || value.Type() == pcommon.ValueTypeEmpty {
		return pcommon.Value{}, false
	}
	return value, true
}

// pyFloat is Python's repr of a float.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	scientific := strconv.FormatFloat(f, 'e', -1, 64)
	exponent, _ := strconv.Atoi(scientific[strings.IndexByte(scientific, 'e')+1:])
	if f != 0 && (exponent < -4 || exponent >= 16) {
		return scientific
	}
	fixed := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(fixed, ".") {
		fixed += ".0"
	}
	return fixed
}

// pyStr is Python's str() of a scalar value; ok is false for sequences, maps and empty values.
func pyStr(value pcommon.Value) (string, bool) {
	switch value.Type() {
	case pcommon.ValueTypeStr:
		return value.Str(), true
	case pcommon.ValueTypeInt:
		return strconv.FormatInt(value.Int(), 10), true
	case pcommon.ValueTypeDouble:
		return pyFloat(value.Double()), true
	case pcommon.ValueTypeBool:
		if value.Bool() {
			return "True", true
		}
		return "False", true
	case pcommon.ValueTypeBytes:
		return strings.ToValidUTF8(string(value.Bytes().AsRaw()), "\uFFFD"), true
	}
	return "", false
}

// pyIsSpace is Python's str.isspace for one character: Go's unicode.IsSpace plus the separators U+001C-U+001F.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// asText is semconv._as_text: the value's text stripped, or "" when missing or empty; a sequence gives its
// first item.
func asText(value pcommon.Value) string {
	if value.Type() == pcommon.ValueTypeSlice {
		if value.Slice().Len() == 0 {
			return ""
		}
		return asText(value.Slice().At(0))
	}
	text, _ := pyStr(value)
	return strings.TrimFunc(text, pyIsSpace)
}

// pyTruthy is Python's truth value of an attribute value.
func pyTruthy(value pcommon.Value) bool {
	switch value.Type() {
	case pcommon.ValueTypeStr:
		return value.Str() != ""
	case pcommon.ValueTypeInt:
		return value.Int() != 0
	case pcommon.ValueTypeDouble:
		return value.Double() != 0
	case pcommon.ValueTypeBool:
		return value.Bool()
	case pcommon.ValueTypeBytes:
		return value.Bytes().Len() > 0
	case pcommon.ValueTypeSlice:
		return value.Slice().Len() > 0
	case pcommon.ValueTypeMap:
		return value.Map().Len() > 0
	}
	return false
}

// pyIntText is what Python's int() accepts from text: optional sign, ASCII digits, single underscores between.
var pyIntText = regexp.MustCompile(`^[+-]?[0-9](?:_?[0-9])*$`)

// asCount is semconv._as_int: a non-negative integer, or ok=false.
func asCount(value pcommon.Value) (int64, bool) {
	var number int64
	switch value.Type() {
	case pcommon.ValueTypeInt:
		number = value.Int()
	case pcommon.ValueTypeDouble:
		f := math.Trunc(value.Double())
		if math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
			return 0, false
		}
		number = int64(f)
	case pcommon.ValueTypeStr, pcommon.ValueTypeBytes:
		text, _ := pyStr(value)
		text = strings.TrimFunc(text, pyIsSpace)
		if !pyIntText.MatchString(text) {
			return 0, false
		}
		parsed, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 10, 64)
		if err != nil {
			return 0, false
		}
		number = parsed
	default:
		return 0, false
	}
	return number, number >= 0
}

// capRunes cuts text to at most limit characters (Python slices by code point).
func capRunes(text string, limit int) string {
	if len(text) <= limit {
		return text
	}
	count := 0
	for i := range text {
		if count == limit {
			return text[:i]
		}
		count++
	}
	return text
}

// normalizeProvider is semconv.normalize_provider; "" when there is none.
func (r *rules) normalizeProvider(value pcommon.Value) string {
	text := asText(value)
	if text == "" {
		return ""
	}
	key := strings.ToLower(text)
	if canonical, ok := r.ProviderAliases[key]; ok {
		return canonical
	}
	cleaned := strings.Trim(r.nonNameChars.ReplaceAllString(key, "_"), "_")
	if canonical, ok := r.ProviderAliases[cleaned]; ok {
		return canonical
	}
	return capRunes(cleaned, r.MaxProviderLength)
}

// normalizeModel is semconv.normalize_model; "" when there is none.
func (r *rules) normalizeModel(value pcommon.Value) string {
	return capRunes(asText(value), r.MaxModelLength)
}

// providerFromModel is semconv.provider_from_model; "" when no rule matches.
func (r *rules) providerFromModel(model string) string {
	if model == "" {
		return ""
	}
	for _, rule := range r.modelRules {
		if rule.pattern.MatchString(model) {
			return rule.provider
		}
	}
	return ""
}

// stringIn is Python's `value in frozenset_of_str`: only a string can be a member.
func stringIn(value pcommon.Value, members map[string]bool) bool {
	return value.Type() == pcommon.ValueTypeStr && members[value.Str()]
}

// isLLMSpan is semconv.is_llm_span.
func (r *rules) isLLMSpan(attrs pcommon.Map) bool {
	if kind, ok := lookup(attrs, r.Names.LangsmithSpanKind); ok {
		return stringIn(kind, r.llmKinds)
	}
	if operation, ok := lookup(attrs, r.Names.OperationName); ok {
		return stringIn(operation, r.llmOperations)
	}
	if requestType, ok := lookup(attrs, r.Names.OpenllmetryRequestType); ok {
		return stringIn(requestType, r.llmOperations)
	}
	system, ok := lookup(attrs, r.Names.ProviderName)
	if !ok || !pyTruthy(system) {
		if system, ok = lookup(attrs, r.Names.System); !ok {
			return false
		}
	}
	if text, scalar := pyStr(system); scalar && r.frameworks[strings.ToLower(text)] {
		return false
	}
	_, hasModel := lookup(attrs, r.Names.RequestModel)
	return hasModel
}

// resolveModel is semconv.resolve_model.
func (r *rules) resolveModel(attrs pcommon.Map) string {
	for _, key := range r.ModelSources {
		if value, ok := lookup(attrs, key); ok {
			if model := r.normalizeModel(value); model != "" {
				return model
			}
		}
	}
	return ""
}

func (r *rules) providerOf(attrs pcommon.Map, key string) string {
	if value, ok := lookup(attrs, key); ok {
		return r.normalizeProvider(value)
	}
	return ""
}

// resolveProvider is semconv.resolve_provider, given resolveModel's answer.
func (r *rules) resolveProvider(attrs pcommon.Map, model string) string {
	if provider := r.providerOf(attrs, r.Names.ProviderName); provider != "" {
		return provider
	}
	if provider := r.providerOf(attrs, r.Names.LangsmithLsProvider); provider != "" {
		return provider
	}
	inferred := r.providerFromModel(model)
	if inferred == r.BedrockProvider {
		return inferred
	}
	if system := r.providerOf(attrs, r.Names.System); system != "" && !r.frameworks[system] {
		return system
	}
	return inferred
}

// firstCount is one half of semconv.resolve_tokens: the first source holding a count.
func firstCount(attrs pcommon.Map, keys []string) (int64, bool) {
	for _, key := range keys {
		if value, ok := lookup(attrs, key); ok {
			if count, ok := asCount(value); ok {
				return count, true
			}
		}
	}
	return 0, false
}

// langgraphNode is normalize.langgraph_node: ours if set, else LangSmith's metadata; "" when none.
func (r *rules) langgraphNode(attrs pcommon.Map) string {
	value, ok := lookup(attrs, r.Names.LanggraphNode)
	if !ok {
		if value, ok = lookup(attrs, r.Names.LangsmithLanggraphNode); !ok {
			return ""
		}
	}
	return capRunes(r.normalizeModel(value), r.MaxNodeLength)
}

// llmCall is what one LLM span says about one model call (normalize.LLMCall, the parts the roll-up uses).
type llmCall struct {
	provider, model string
	inputTokens     int64
	hasInput        bool
	outputTokens    int64
	hasOutput       bool
	failed          bool
}

// callOf returns the call an LLM span describes, or nil for any other span.
func (r *rules) callOf(span ptrace.Span) *llmCall {
	attrs := span.Attributes()
	if !r.isLLMSpan(attrs) {
		return nil
	}
	call := &llmCall{model: r.resolveModel(attrs)}
	call.provider = r.resolveProvider(attrs, call.model)
	if call.provider == "" {
		call.provider = r.Unknown
	}
	if call.model == "" {
		call.model = r.Unknown
	}
	call.inputTokens, call.hasInput = firstCount(attrs, r.InputTokenSources)
	call.outputTokens, call.hasOutput = firstCount(attrs, r.OutputTokenSources)
	call.failed = span.Status().Code() == ptrace.StatusCodeError
	if errorType, ok := lookup(attrs, r.Names.ErrorType); ok && r.normalizeModel(errorType) != "" {
		call.failed = true
	}
	return call
}

// putIfChanged sets a string attribute unless it already holds exactly that string.
func putIfChanged(attrs pcommon.Map, key, value string) {
	if current, ok := attrs.Get(key); ok && current.Type() == pcommon.ValueTypeStr && current.Str() == value {
		return
	}
	attrs.PutStr(key, value)
}

// enrich gives an LLM span its normalised provider and model and any span with LangGraph node metadata
// llm.langgraph.node, as the SDK's export-side enrichment does.
func (r *rules) enrich(span ptrace.Span, call *llmCall) {
	attrs := span.Attributes()
	if call != nil {
		putIfChanged(attrs, r.Names.ProviderName, call.provider)
		putIfChanged(attrs, r.Names.RequestModel, call.model)
	} else if _, ok := attrs.Get(r.Names.LangsmithLanggraphNode); !ok {
		return
	}
	if node := r.langgraphNode(attrs); node != "" {
		putIfChanged(attrs, r.Names.LanggraphNode, node)
	}
}
