package a2agateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/agentgov/agentgov/errcode"
)

// cardTimeout bounds fetching the upstream's card.
const cardTimeout = 10 * time.Second

// serveCard answers with the upstream's agent card, rewritten so that
// every address in it is the gateway's: a client that follows the card
// reaches the upstream through the gateway or not at all.
func (g *Gateway) serveCard(w http.ResponseWriter, r *http.Request, c *call) {
	ctx, cancel := context.WithTimeout(r.Context(), cardTimeout)
	defer cancel()
	card, err := g.up.card(ctx)
	if err != nil {
		writeHTTPError(w, errcode.Wrap(errcode.UpstreamUnreachable, fmt.Sprintf("the agent card of %s could not be fetched: %s", g.cfg.Name, maskText(err.Error())), err))
		return
	}
	rewriteCard(card, c.base, g.up.base)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(card)
}

// rewriteCard points card at the gateway (base) and takes out what would
// lead a client past it, or promise what the gateway does not relay.
func rewriteCard(card *a2a.AgentCard, base string, upstream *url.URL) {
	card.URL = base
	card.PreferredTransport = a2a.TransportProtocolJSONRPC
	// The gateway speaks JSON-RPC only: other transports of the upstream
	// would be its addresses.
	card.AdditionalInterfaces = []a2a.AgentInterface{{Transport: a2a.TransportProtocolJSONRPC, URL: base}}
	card.Capabilities.PushNotifications = false
	card.SupportsAuthenticatedExtendedCard = false
	// A signature covers the card as the upstream wrote it, which this no
	// longer is.
	card.Signatures = nil
	// Callers authenticate to the gateway with their agentgov token; the
	// upstream's own schemes are the gateway's business.
	card.SecuritySchemes = a2a.NamedSecuritySchemes{
		"agentgov": a2a.HTTPAuthSecurityScheme{Scheme: "bearer", Description: "an agentgov agent token"},
	}
	card.Security = []a2a.SecurityRequirements{{"agentgov": a2a.SecuritySchemeScopes{}}}
	for i := range card.Skills {
		card.Skills[i].Security = nil
	}
	// Links that name the upstream's host would tell its address.
	if sameHost(card.DocumentationURL, upstream) {
		card.DocumentationURL = ""
	}
	if sameHost(card.IconURL, upstream) {
		card.IconURL = ""
	}
	if card.Provider != nil && sameHost(card.Provider.URL, upstream) {
		card.Provider.URL = ""
	}
}

func sameHost(raw string, upstream *url.URL) bool {
	if raw == "" {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return true // unreadable: not worth the risk
	}
	return strings.EqualFold(u.Hostname(), upstream.Hostname())
}
