package metrics_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/remotelab-go/remotelab/internal/metrics"
)

// TestRouteCountsByCode: a Route handle counts each status code in its own
// series, concurrently, and the same route gets the same handle (whose
// counts add up).
func TestRouteCountsByCode(t *testing.T) {
	m := metrics.New()
	r := m.Route("GET /session/{id}")
	assert.Same(t, r, m.Route("GET /session/{id}"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				code := 200
				if i%4 == 0 {
					code = 404
				}
				r.Observe(code, time.Millisecond)
			}
		})
	}
	wg.Wait()
	m.Route("GET /session/{id}").Observe(404, time.Millisecond)
	text := scrape(t, m)
	assert.Contains(t, text, `remotelab_http_requests_total{code="200",route="GET /session/{id}"} 600`)
	assert.Contains(t, text, `remotelab_http_requests_total{code="404",route="GET /session/{id}"} 201`)
	assert.Contains(t, text, `remotelab_http_request_seconds_count{route="GET /session/{id}"} 801`)
}
