package config

import (
	"errors"

	"github.com/agentgov/agentgov/chaos"
)

// Chaos experiments (chaos:) are validated by package chaos; see
// docs/chaos.md.

func (c *Config) fillChaos() { chaos.Fill(c.Chaos) }

func (c *Config) validateChaos() error {
	err := chaos.Validate(c.Chaos)
	var ke *chaos.KeyError
	if errors.As(err, &ke) {
		return &Error{Key: ke.Key, Msg: ke.Msg}
	}
	return err
}
