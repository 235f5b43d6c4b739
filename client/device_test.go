package client_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/client"
)

func TestDeviceLookup(t *testing.T) {
	d := client.Device{Name: "r1", Raw: json.RawMessage(`{
		"ansible_host": "192.168.121.101",
		"mgmt": {"ipv4": "192.168.121.101", "mac": "08:4f:a9:00:00:01"},
		"netlab.flat": "dotted key",
		"id": 1,
		"ports": [22, 830]
	}`)}

	for path, want := range map[string]any{
		"ansible_host": "192.168.121.101",
		"mgmt.ipv4":    "192.168.121.101",
		"netlab.flat":  "dotted key",
		"id":           float64(1),
	} {
		v, ok := d.Lookup(path)
		assert.True(t, ok, path)
		assert.Equal(t, want, v, path)
	}
	for _, path := range []string{"", "mgmt.ipv6", "mgmt.ipv4.x", "nope", "ports.0"} {
		_, ok := d.Lookup(path)
		assert.False(t, ok, path)
	}

	assert.Equal(t, "192.168.121.101", d.Text("mgmt.ipv4"))
	assert.Equal(t, "1", d.Text("id"))
	assert.Equal(t, "[22,830]", d.Text("ports"))
	assert.Equal(t, "", d.Text("missing"))

	var node struct {
		Host string `json:"ansible_host"`
		Mgmt struct {
			IPv4 string `json:"ipv4"`
		} `json:"mgmt"`
	}
	require.NoError(t, d.Decode(&node))
	assert.Equal(t, "192.168.121.101", node.Host)
	assert.Equal(t, "192.168.121.101", node.Mgmt.IPv4)
}

func TestDeviceNotAnObject(t *testing.T) {
	d := client.Device{Name: "r1", Raw: json.RawMessage(`[1,2]`)}
	_, ok := d.Lookup("x")
	assert.False(t, ok)
	var m map[string]any
	err := d.Decode(&m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "decode device r1")
}
