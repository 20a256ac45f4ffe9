package config

import (
	"strings"
	"testing"
	"time"
)

// body_read_timeout: absent is 30s; a value outside 1ms..10m is refused,
// naming the key.
func TestBodyReadTimeout(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte(""))
	if err != nil || c.BodyReadTimeout != DefaultBodyReadTimeout || DefaultBodyReadTimeout != 30*time.Second {
		t.Fatalf("default: %v %v", c, err)
	}
	if c, err := Parse("agentgov.yaml", []byte("body_read_timeout: 2m\n")); err != nil || c.BodyReadTimeout != 2*time.Minute {
		t.Fatalf("2m: %v %v", c, err)
	}
	for _, bad := range []string{"-1s", "11m", "soon"} {
		if _, err := Parse("agentgov.yaml", []byte("body_read_timeout: "+bad+"\n")); err == nil || !strings.Contains(err.Error(), "body_read_timeout") && !strings.Contains(err.Error(), "agentgov.yaml:1") {
			t.Errorf("body_read_timeout: %s accepted (%v)", bad, err)
		}
	}
}

// The llm keys of the model proxy are known keys of the file.
func TestLLMKeys(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte("llm:\n  google: {base_url: 'http://127.0.0.1:9/v1beta/openai', api_key_env: G}\n  default_max_tokens: 2048\n  max_request_bytes: 1048576\n  catalog: ./models.yaml\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LLM.DefaultMaxTokens != 2048 || c.LLM.MaxRequestBytes != 1<<20 || c.LLM.Google.APIKeyEnv != "G" || c.LLM.Catalog != "./models.yaml" {
		t.Errorf("llm = %+v", c.LLM)
	}
	if _, err := Parse("agentgov.yaml", []byte("llm:\n  default_max_token: 2048\n")); err == nil || !strings.Contains(err.Error(), "default_max_token") {
		t.Errorf("a misspelt llm key: %v", err)
	}
}
