package client

import (
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/remotelab-go/remotelab/api"
)

// Environment variables read by FromEnv.
const (
	EnvURL                = "REMOTE_LAB_URL"
	EnvRequestTimeout     = "REMOTE_LAB_REQUEST_TIMEOUT"
	EnvSessionTimeout     = "REMOTE_LAB_SESSION_TIMEOUT"
	EnvAcquisitionTimeout = "REMOTE_LAB_ACQUISITION_TIMEOUT"
	// EnvHeartbeatInterval is not read by the original client: it lets a
	// client keep up with a server run with an active TTL shorter than
	// the default heartbeat interval.
	EnvHeartbeatInterval = "REMOTE_LAB_HEARTBEAT_INTERVAL"
	// EnvToken is the bearer token for a server with authentication.
	EnvToken = "REMOTE_LAB_TOKEN"
	// EnvOwner, EnvLabels and EnvWaitTimeout are the session defaults
	// of OpenOptionsFromEnv.
	EnvOwner       = "REMOTE_LAB_OWNER"
	EnvLabels      = "REMOTE_LAB_LABELS"
	EnvWaitTimeout = "REMOTE_LAB_WAIT_TIMEOUT"
)

// LabelJob is the label that names the CI job a session runs in.
const LabelJob = "job"

// FromEnv returns a client configured from the environment, as the
// original Python client was: the server at REMOTE_LAB_URL (required;
// ErrNoURL if unset) with the options of OptionsFromEnv, then opts, which
// override the environment.
func FromEnv(opts ...Option) (*Client, error) {
	base := strings.TrimSpace(os.Getenv(EnvURL))
	if base == "" {
		return nil, fmt.Errorf("client from env: %w", ErrNoURL)
	}
	if _, err := parseBase(base); err != nil {
		return nil, fmt.Errorf("client from env: %s: %w", EnvURL, err)
	}
	env, err := OptionsFromEnv()
	if err != nil {
		return nil, fmt.Errorf("client from env: %w", err)
	}
	c, err := New(base, append(env, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("client from env: %w", err)
	}
	return c, nil
}

// OptionsFromEnv returns the client options the environment asks for,
// for a client made with New for a URL from elsewhere (a command-line
// flag); FromEnv uses them too:
//
//	REMOTE_LAB_REQUEST_TIMEOUT      per-call timeout (30)
//	REMOTE_LAB_SESSION_TIMEOUT      wait for the session to be active (600)
//	REMOTE_LAB_ACQUISITION_TIMEOUT  one Acquire (600)
//	REMOTE_LAB_HEARTBEAT_INTERVAL   heartbeat interval (60)
//	REMOTE_LAB_TOKEN                bearer token (none)
//
// and the session defaults of OpenOptionsFromEnv (owner, labels, CI job,
// wait timeout). Unset or empty variables keep the defaults. Durations
// are plain seconds ("30", "2.5") or Go durations ("90s", "10m"), read by
// api.ParseDuration as the server reads ?wait=; anything else is an error
// that names the variable.
func OptionsFromEnv() ([]Option, error) {
	var opts []Option
	for _, v := range []struct {
		name     string
		opt      func(time.Duration) Option
		positive bool
	}{
		{EnvRequestTimeout, WithRequestTimeout, false},
		{EnvSessionTimeout, WithSessionTimeout, false},
		{EnvAcquisitionTimeout, WithAcquisitionTimeout, false},
		{EnvHeartbeatInterval, WithHeartbeatInterval, true},
	} {
		s := strings.TrimSpace(os.Getenv(v.name))
		if s == "" {
			continue
		}
		d, err := api.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		if v.positive && d == 0 {
			return nil, fmt.Errorf("%s=%q: must be positive", v.name, s)
		}
		opts = append(opts, v.opt(d))
	}
	if token := strings.TrimSpace(os.Getenv(EnvToken)); token != "" {
		if err := checkToken(token); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvToken, err)
		}
		opts = append(opts, WithToken(token))
	}
	defaults, err := OpenOptionsFromEnv()
	if err != nil {
		return nil, err
	}
	return append(opts, WithOpenDefaults(defaults...)), nil
}

// OpenOptionsFromEnv returns the session defaults that FromEnv gives its
// client (see WithOpenDefaults):
//
//	REMOTE_LAB_OWNER         owner (unset or empty: DefaultOwner(), "user@hostname")
//	REMOTE_LAB_LABELS        labels, "k=v,k=v" (see ParseLabels)
//	REMOTE_LAB_WAIT_TIMEOUT  wait timeout, seconds or a Go duration (none)
//
// plus the label "job" naming the CI job when the environment tells it:
// the GitHub Actions run URL
// ($GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID),
// GitLab's CI_JOB_URL or Jenkins' BUILD_URL. A "job" in REMOTE_LAB_LABELS
// wins; a detected job URL that is not a valid label value is left out.
// Invalid values are errors that name the variable.
func OpenOptionsFromEnv() ([]OpenOption, error) {
	owner := DefaultOwner()
	if v := strings.TrimSpace(os.Getenv(EnvOwner)); v != "" {
		if !api.ValidText(v, api.MaxOwnerLen) {
			return nil, fmt.Errorf("%s=%q: want at most %d printable characters", EnvOwner, api.Clip(v), api.MaxOwnerLen)
		}
		owner = v
	}
	labels, err := ParseLabels(os.Getenv(EnvLabels))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvLabels, err)
	}
	if job := CIJob(); job != "" && labels[LabelJob] == "" && api.ValidText(job, api.MaxLabelValueLen) {
		if labels == nil {
			labels = make(map[string]string, 1)
		}
		labels[LabelJob] = job
	}
	if issues := (api.SessionRequest{Labels: labels}).Validate(); len(issues) > 0 {
		return nil, fmt.Errorf("%s: %s", EnvLabels, issuesText(issues))
	}
	opts := []OpenOption{WithOwner(owner)}
	if len(labels) > 0 {
		opts = append(opts, WithLabels(labels))
	}
	if s := strings.TrimSpace(os.Getenv(EnvWaitTimeout)); s != "" {
		d, err := api.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvWaitTimeout, err)
		}
		opts = append(opts, WithWaitTimeout(d))
	}
	return opts, nil
}

// ParseLabels parses labels written "k=v,k=v" (REMOTE_LAB_LABELS, and
// the CLI's --label): spaces around items, keys and values are ignored,
// as are empty items; a value may contain "=". An item without "=", an
// empty key, a key given twice, or keys and values the server would
// refuse (api.SessionRequest.Validate) are errors. "" gives no labels.
func ParseLabels(s string) (map[string]string, error) {
	var labels map[string]string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
			return nil, fmt.Errorf("label %q: want key=value", api.Clip(item))
		case k == "":
			return nil, fmt.Errorf("label %q: empty key", api.Clip(item))
		}
		if _, dup := labels[k]; dup {
			return nil, fmt.Errorf("label %q given twice", api.Clip(k))
		}
		if labels == nil {
			labels = make(map[string]string)
		}
		labels[k] = v
	}
	if issues := (api.SessionRequest{Labels: labels}).Validate(); len(issues) > 0 {
		return nil, fmt.Errorf("labels %q: %s", api.Clip(s), issuesText(issues))
	}
	return labels, nil
}

// CIJob returns the URL of the CI job the process runs in, from the
// environment of GitHub Actions, GitLab CI or Jenkins; "" when it cannot
// tell.
func CIJob() string {
	env := func(k string) string { return strings.TrimSpace(os.Getenv(k)) }
	if srv, repo, run := env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID"); srv != "" && repo != "" && run != "" {
		return strings.TrimRight(srv, "/") + "/" + repo + "/actions/runs/" + run
	}
	if u := env("CI_JOB_URL"); u != "" {
		return u
	}
	return env("BUILD_URL")
}

// DefaultOwner returns "user@hostname" for the running process, the
// owner a Go client names when it is told no other; parts it cannot
// learn are "unknown". It is clipped to the server's 128 characters.
func DefaultOwner() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	for _, k := range []string{"USER", "LOGNAME"} {
		if name == "" {
			name = os.Getenv(k)
		}
	}
	host, _ := os.Hostname()
	owner := printableOnly(orUnknown(name)) + "@" + printableOnly(orUnknown(host))
	if utf8.RuneCountInString(owner) > api.MaxOwnerLen {
		owner = string([]rune(owner)[:api.MaxOwnerLen])
	}
	return owner
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "unknown"
	}
	return strings.TrimSpace(s)
}

// printableOnly drops what the server would refuse in an owner.
func printableOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !api.ValidText(string(r), 1) {
			return -1
		}
		return r
	}, s)
}
