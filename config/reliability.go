package config

import (
	"errors"

	"github.com/agentgov/agentgov/alert"
	"github.com/agentgov/agentgov/sre"
)

// Reliability is the slos: and breakers: of the configuration, as the
// monitor takes them.
func (c *Config) Reliability() sre.Config {
	return sre.Config{SLOs: c.SLOs, Breakers: c.Breakers}
}

func (c *Config) fillReliability() {
	r := c.Reliability()
	r.Fill()
	c.Alerts.Fill()
	c.fillTelemetry()
}

func (c *Config) validateReliability() error {
	r := c.Reliability()
	err := r.Validate()
	var ke *sre.KeyError
	if errors.As(err, &ke) {
		return &Error{Key: ke.Key, Msg: ke.Msg}
	}
	if err != nil {
		return err
	}
	err = c.Alerts.Validate()
	var ae *alert.KeyError
	if errors.As(err, &ae) {
		return &Error{Key: ae.Key, Msg: ae.Msg}
	}
	if err != nil {
		return err
	}
	return c.validateTelemetry()
}
