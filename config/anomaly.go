package config

import (
	"errors"

	"github.com/agentgov/agentgov/anomaly"
)

func (c *Config) fillAnomaly() { c.Anomaly.Fill() }

// validateAnomaly checks the anomaly: section, naming the key.
func (c *Config) validateAnomaly() error {
	err := c.Anomaly.Validate()
	var ke *anomaly.KeyError
	if errors.As(err, &ke) {
		return &Error{Key: "anomaly." + ke.Key, Msg: ke.Msg}
	}
	return err
}
