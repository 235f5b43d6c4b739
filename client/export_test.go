package client

import "context"

// Send sends a request without a body and decodes nothing, for the
// tests of error answers.
func Send(ctx context.Context, c *Client, method, path string) error {
	_, err := c.send(ctx, request{method: method, path: path}, nil)
	return err
}
