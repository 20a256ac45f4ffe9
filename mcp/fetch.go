package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// ClientName is how the gateway introduces itself to an upstream when it
// talks to one on its own (pin, diff, scan).
const ClientName = "agentgov"

// ProtocolVersion is what the gateway asks for when it talks to an upstream
// on its own; the upstream may answer with an older one it supports.
const ProtocolVersion = "2025-11-25"

// FetchTools connects to an upstream as an MCP client, lists all its tools
// (every page) and closes the connection. The definitions are kept as the
// server sent them, so that their fingerprints are those the gateway will
// compute at run time.
func FetchTools(ctx context.Context, dial Dialer) ([]pin.ToolDef, error) {
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := &rawClient{conn: conn}
	resp, err := c.call(ctx, methodInitialize, map[string]any{
		"protocolVersion": ProtocolVersion,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": ClientName, "version": "1"},
	})
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(resp, &init); err != nil {
		return nil, fmt.Errorf("initialize result: %w", err)
	}
	if err := conn.Write(ctx, &jsonrpc.Request{Method: methodInitialized, Params: json.RawMessage(`{}`)}); err != nil {
		return nil, fmt.Errorf("initialized: %w", err)
	}
	var tools []pin.ToolDef
	cursor := ""
	for page := 0; page <= 1000; page++ {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		res, err := c.call(ctx, methodToolsList, params)
		if err != nil {
			var we *jsonrpc.Error
			if errors.As(err, &we) && we.Code == jsonrpc.CodeMethodNotFound {
				return tools, nil
			}
			return nil, fmt.Errorf("tools/list: %w", err)
		}
		defs, next, err := parseToolsPage(res)
		if err != nil {
			return nil, err
		}
		tools = append(tools, defs...)
		if next == "" {
			return tools, nil
		}
		cursor = next
	}
	return nil, errors.New("tools/list: more than 1000 pages")
}

// rawClient makes calls over a connection nobody else reads, answering
// what the server asks of it with "method not found".
type rawClient struct {
	conn sdk.Connection
	next int64
}

func (c *rawClient) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	c.next++
	id, _ := jsonrpc.MakeID(float64(c.next))
	if err := c.conn.Write(ctx, &jsonrpc.Request{ID: id, Method: method, Params: raw}); err != nil {
		return nil, err
	}
	for {
		msg, err := c.conn.Read(ctx)
		if err != nil {
			return nil, fmt.Errorf("the server closed the connection: %w", err)
		}
		switch m := msg.(type) {
		case *jsonrpc.Response:
			if m.ID != id {
				continue
			}
			if m.Error != nil {
				return nil, m.Error
			}
			return m.Result, nil
		case *jsonrpc.Request:
			if m.IsCall() {
				c.conn.Write(ctx, &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "not supported by " + ClientName}})
			}
		}
	}
}
