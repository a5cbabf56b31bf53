package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/strict"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// MaxBodySize is the largest request body the API reads.
const MaxBodySize = 1 << 20

// Route is one method and path the API serves.
type Route struct {
	Method string
	Path   string // net/http pattern, e.g. /v1/trackers/{id}
	handle http.HandlerFunc
}

// Routes lists what the API serves; api/openapi.yaml describes exactly
// these (a test checks it).
func (s *Server) Routes() []Route {
	return []Route{
		{"GET", "/healthz", s.handleHealth},
		{"GET", "/metrics", s.handleMetrics},
		{"GET", "/v1/trackers", s.handleList},
		{"POST", "/v1/trackers", s.handleStart},
		{"GET", "/v1/trackers/{id}", s.handleGet},
		{"DELETE", "/v1/trackers/{id}", s.handleStop},
	}
}

// Handler returns the API's HTTP handler, without authentication (the
// unix socket's mode is its access control; see RequireToken for TCP).
func (s *Server) Handler() http.Handler {
	byPath := map[string]map[string]http.HandlerFunc{}
	var paths []string
	for _, r := range s.Routes() {
		if byPath[r.Path] == nil {
			byPath[r.Path] = map[string]http.HandlerFunc{}
			paths = append(paths, r.Path)
		}
		byPath[r.Path][r.Method] = r.handle
	}
	mux := http.NewServeMux()
	for _, p := range paths {
		methods := byPath[p]
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		pattern := p
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			h, ok := methods[r.Method]
			if !ok {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
				return
			}
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			h(rec, r)
			s.stats.requests.WithLabelValues(r.Method, pattern, strconv.Itoa(rec.status)).Inc()
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s (see api/openapi.yaml)", r.URL.Path))
	})
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok", Trackers: len(s.List()), Config: s.Status()})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.stats.handler.ServeHTTP(w, r)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, TrackerList{Trackers: s.List()})
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodySize))
			return
		}
		writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		return
	}
	spec, err := DecodeStartRequest(s.reg, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	info, err := s.StartSpec(spec)
	if err != nil {
		var bad *badSpecError
		switch {
		case errors.As(err, &bad):
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, errClosed):
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			writeError(w, http.StatusInternalServerError, err.Error())
		}
		return
	}
	w.Header().Set("Location", "/v1/trackers/"+strconv.FormatUint(info.ID, 10))
	writeJSON(w, http.StatusCreated, info)
}

// DecodeStartRequest decodes and validates the body of POST /v1/trackers:
// a tracker spec in JSON. Errors say what is wrong and where.
func DecodeStartRequest(reg *tracker.Registry, body []byte) (pipeline.Spec, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return pipeline.Spec{}, errors.New(`empty request body: send a JSON object such as {"kind": "process", "config": {"pid": 1234}, "handlers": [{"type": "json"}]}`)
	}
	spec, err := pipeline.DecodeSpecJSON(reg, body)
	if err != nil {
		var se *strict.Error
		if errors.As(err, &se) && se.Line > 0 {
			// Name the key first; the line helps with long bodies.
			msg := se.Msg
			if se.Key != "" {
				msg = se.Key + ": " + msg
			}
			return spec, fmt.Errorf("%s (line %d of the request)", msg, se.Line)
		}
		return spec, err
	}
	return spec, nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	info, err := s.Get(id)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) handleStop(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	info, err := s.Stop(id)
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		// Stopped, but not cleanly: say so, with the final counts logged.
		s.log.Warn("stop tracker", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("tracker %d stopped with an error: %v", id, err))
	default:
		writeJSON(w, http.StatusOK, info)
	}
}

func pathID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	raw := r.PathValue("id")
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("tracker id %q is not a positive whole number", raw))
		return 0, false
	}
	return id, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(ErrorResponse{Error: msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// RequireToken wraps h so that every request must carry
// "Authorization: Bearer TOKEN"; any other gets 401 before h sees it.
func RequireToken(token string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Compare digests so that neither the token's bytes nor its
		// length leak through timing.
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eunomia"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (send Authorization: Bearer TOKEN, the token in the server's --token-file)")
			return
		}
		h.ServeHTTP(w, r)
	})
}
