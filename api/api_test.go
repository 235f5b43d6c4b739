package api_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
)

func TestParseBool(t *testing.T) {
	for _, s := range []string{"true", "TRUE", "True", "1", "yes", "Yes", "on", "ON", " true "} {
		v, ok := api.ParseBool(s)
		assert.True(t, ok, s)
		assert.True(t, v, s)
	}
	for _, s := range []string{"false", "FALSE", "0", "no", "NO", "off", "Off"} {
		v, ok := api.ParseBool(s)
		assert.True(t, ok, s)
		assert.False(t, v, s)
	}
	for _, s := range []string{"", "2", "maybe", "truee", "nope", "-1", "tr ue", "t", "f", "y", "N"} {
		_, ok := api.ParseBool(s)
		assert.False(t, ok, s)
	}
}

// TestWireShapes pins the JSON the original's clients read.
func TestWireShapes(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{api.CreateSessionResponse{SessionID: "id", Position: 2, Status: api.StatusWaiting},
			`{"session_id":"id","position":2,"status":"waiting","epoch":0}`},
		{api.SessionStatus{Status: api.StatusActive, SessionDetails: api.SessionDetails{Epoch: 3}},
			`{"status":"active","position":0,"epoch":3}`},
		{api.ActiveSession{Status: api.StatusActive, SessionID: "id"},
			`{"status":"active","position":0,"session_id":"id"}`},
		{api.AcquireResponse{Devices: []api.Device{{Name: "r1", Raw: json.RawMessage(`{"a":1}`)}}},
			`{"reused":false,"devices":[{"name":"r1","raw":{"a":1}}]}`},
		{api.LabStatus{Devices: []api.Device{}, State: "none"},
			`{"running":false,"topology":null,"ref_count":0,"devices":[],"netlab_status":null,"state":"none"}`},
		{api.Error{Detail: api.DetailSessionNotFound}, `{"detail":"Session not found"}`},
		{api.ValidationError{Detail: []api.ValidationIssue{{Type: api.IssueMissing,
			Loc: []string{"header", api.HeaderSessionID}, Msg: "Field required"}}},
			`{"detail":[{"type":"missing","loc":["header","X-Session-ID"],"msg":"Field required","input":null}]}`},
	} {
		b, err := json.Marshal(tc.v)
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(b))
	}
}

func TestShortID(t *testing.T) {
	assert.Equal(t, "1a2b3c4d", api.ShortID("1a2b3c4d-0000-4000-8000-000000000000"))
	assert.Equal(t, "abc", api.ShortID("abc"))
	assert.Equal(t, "", api.ShortID(""))
}
