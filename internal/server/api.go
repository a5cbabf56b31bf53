package server

import (
	"encoding/json"
	"time"

	"github.com/eunomia-agent/eunomia/internal/pipeline"
)

// The API's wire types. api/openapi.yaml describes them; a test checks
// every response against it.

// TrackerInfo describes a tracker instance.
type TrackerInfo struct {
	ID         uint64                 `json:"id"`
	Tracker    string                 `json:"tracker"`        // kind#id, as in every event's "tracker" field
	Name       string                 `json:"name,omitempty"` // the spec's name
	Kind       string                 `json:"kind"`
	Container  string                 `json:"container,omitempty"` // the spec's container filter
	Origin     string                 `json:"origin"`              // OriginAPI or OriginConfig
	Config     json.RawMessage        `json:"config"`
	Handlers   []pipeline.HandlerSpec `json:"handlers"`
	State      string                 `json:"state"`
	Started    time.Time              `json:"started"`
	Events     uint64                 `json:"events"`
	LostKernel uint64                 `json:"lost_kernel"`
	LostQueue  uint64                 `json:"lost_queue"`
	Failed     uint64                 `json:"failed"`
}

// Where a tracker instance came from.
const (
	OriginAPI    = "api"
	OriginConfig = "config"
)

// TrackerList is the answer to GET /v1/trackers.
type TrackerList struct {
	Trackers []TrackerInfo `json:"trackers"`
}

// Health is the answer to GET /healthz.
type Health struct {
	Status   string       `json:"status"`
	Trackers int          `json:"trackers"`
	Config   ConfigStatus `json:"config"`
}

// ConfigStatus says which config file is in force and how its last
// (re)load went.
type ConfigStatus struct {
	Path       string    `json:"path"`
	Generation uint64    `json:"generation"` // number of successful loads
	LoadedAt   time.Time `json:"loaded_at,omitzero"`
	Reloads    uint64    `json:"reloads"` // reload attempts (SIGHUP)
	LastError  string    `json:"last_error,omitempty"`
}

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
