package client

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/remotelab-go/remotelab/api"
)

// Device is one node of a running lab.
type Device struct {
	// Name is the node name from the topology.
	Name string `json:"name"`
	// Raw is what the server knows about the node, a JSON object: for
	// Netlab, the output of `netlab inspect --node NAME` (keys such as
	// "mgmt" with "ipv4", "ansible_host", "ansible_user",
	// "ansible_ssh_pass", "ansible_network_os", "device").
	Raw json.RawMessage `json:"raw"`
}

// Decode unmarshals Raw into v, e.g. a struct with the fields a test
// needs or a map[string]any.
func (d Device) Decode(v any) error {
	if err := json.Unmarshal(d.Raw, v); err != nil {
		return fmt.Errorf("decode device %s: %w", d.Name, err)
	}
	return nil
}

// Lookup returns the value at a dotted path in Raw, e.g. "mgmt.ipv4" or
// "ansible_host". A key that itself contains dots is found too. ok is
// false when the path does not exist or Raw is not a JSON object.
func (d Device) Lookup(path string) (v any, ok bool) {
	var m map[string]any
	if json.Unmarshal(d.Raw, &m) != nil {
		return nil, false
	}
	return lookup(m, path)
}

// Text returns the value at a dotted path as text ("" when it does not
// exist): strings as they are, other values in their JSON form.
func (d Device) Text(path string) string {
	v, ok := d.Lookup(path)
	if !ok {
		return ""
	}
	if s, isString := v.(string); isString {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func lookup(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	for i := strings.IndexByte(path, '.'); i >= 0; {
		if sub, ok := m[path[:i]].(map[string]any); ok {
			if v, ok := lookup(sub, path[i+1:]); ok {
				return v, true
			}
		}
		j := strings.IndexByte(path[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return nil, false
}

func fromAPIDevices(in []api.Device) []Device {
	out := make([]Device, len(in))
	for i, d := range in {
		out[i] = Device{Name: d.Name, Raw: d.Raw}
	}
	return out
}
