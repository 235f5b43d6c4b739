package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/metrics"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// scrape returns the text the metrics handler serves.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(body)
}

// TestGrafanaDashboardUsesExportedMetrics keeps contrib's dashboard in step
// with the metrics: every remotelab_* name it queries is exported.
func TestGrafanaDashboardUsesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile("../../contrib/grafana-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))

	m := metrics.New()
	b, err := broker.New(broker.Config{Lab: lab.Config{Runner: &remotelabtest.FakeRunner{}, WorkRoot: t.TempDir(), LockPath: "-"}, Observer: m})
	require.NoError(t, err)
	_, err = b.Start(context.Background())
	require.NoError(t, err)
	defer b.Close(context.Background())
	m.Watch(b)
	m.Route("GET /healthz").Observe(204, 0)
	text := scrape(t, m)

	name := regexp.MustCompile(`remotelab_[a-z_]+`)
	var queried int
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				queried++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
				assert.Contains(t, text, "# TYPE "+base+" ", "panel %q queries %s", p.Title, n)
			}
		}
	}
	assert.Greater(t, queried, 10)
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
