package llmrollupprocessor

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

type corpusCase struct {
	Name       string                     `json:"name"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	Expected   answers                    `json:"expected"`
}

// answers are the fields otel_llm.semconv_export.answers writes; null is Go's nil.
type answers struct {
	LLM          bool    `json:"llm"`
	Provider     *string `json:"provider"`
	Model        *string `json:"model"`
	InputTokens  *int64  `json:"input_tokens"`
	OutputTokens *int64  `json:"output_tokens"`
	Node         *string `json:"node"`
}

// putJSON stores a JSON value as an attribute the way an OTLP sender would: integers as int, other numbers as
// double, arrays as slices; null leaves the attribute out.
func putJSON(t *testing.T, attrs pcommon.Map, key string, raw json.RawMessage) {
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		return
	}
	if err := fromJSON(attrs.PutEmpty(key), value); err != nil {
		t.Fatal(err)
	}
}

func fromJSON(dest pcommon.Value, value any) error {
	switch v := value.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			dest.SetInt(n)
			return nil
		}
		f, err := v.Float64()
		dest.SetDouble(f)
		return err
	case []any:
		slice := dest.SetEmptySlice()
		for _, item := range v {
			if err := fromJSON(slice.AppendEmpty(), item); err != nil {
				return err
			}
		}
		return nil
	}
	return dest.FromRaw(value)
}

func strOrNil(text string) *string {
	if text == "" {
		return nil
	}
	return &text
}

func countOrNil(count int64, ok bool) *int64 {
	if !ok {
		return nil
	}
	return &count
}

func show(value any) string {
	out, _ := json.Marshal(value)
	return string(out)
}

// TestNormalizeCorpus runs every case of the shared corpus through Go's rules; Python's answers are expected.
func TestNormalizeCorpus(t *testing.T) {
	r, err := embeddedRules()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "normalize_corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct {
		Cases []corpusCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &corpus); err != nil {
		t.Fatal(err)
	}
	if len(corpus.Cases) < 100 {
		t.Fatalf("corpus has %d cases", len(corpus.Cases))
	}
	for _, c := range corpus.Cases {
		span := ptrace.NewSpan()
		for key, value := range c.Attributes {
			putJSON(t, span.Attributes(), key, value)
		}
		attrs := span.Attributes()
		model := r.resolveModel(attrs)
		input, hasInput := firstCount(attrs, r.InputTokenSources)
		output, hasOutput := firstCount(attrs, r.OutputTokenSources)
		got := answers{
			LLM:          r.isLLMSpan(attrs),
			Provider:     strOrNil(r.resolveProvider(attrs, model)),
			Model:        strOrNil(model),
			InputTokens:  countOrNil(input, hasInput),
			OutputTokens: countOrNil(output, hasOutput),
			Node:         strOrNil(r.langgraphNode(attrs)),
		}
		if show(got) != show(c.Expected) {
			t.Errorf("%s: Go %s, Python %s", c.Name, show(got), show(c.Expected))
		}
	}
}

// TestRulesRejectBrokenData: a rules file without a name or with a bad pattern is an error naming it.
func TestRulesRejectBrokenData(t *testing.T) {
	var data map[string]any
	if err := json.Unmarshal(rulesJSON, &data); err != nil {
		t.Fatal(err)
	}
	delete(data["names"].(map[string]any), "rollup_calls")
	broken, _ := json.Marshal(data)
	if _, err := parseRules(broken); err == nil || !bytes.Contains([]byte(err.Error()), []byte("names.rollup_calls")) {
		t.Fatalf("got %v", err)
	}
	if err := json.Unmarshal(rulesJSON, &data); err != nil {
		t.Fatal(err)
	}
	data["model_rules"] = []map[string]string{{"pattern": "(", "provider": "x"}}
	broken, _ = json.Marshal(data)
	if _, err := parseRules(broken); err == nil || !bytes.Contains([]byte(err.Error()), []byte("model_rules[0]")) {
		t.Fatalf("got %v", err)
	}
}
