package nodeagent

import (
	"encoding/json"
	"net/http"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/storage"
)

// checkVolume answers whether this host can use a volume: the server asks
// every ready host before it accepts `volume create`.
func (a *Agent) checkVolume(w http.ResponseWriter, r *http.Request) {
	var v api.VolumeSpec
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&v); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(api.Error{Message: "volume spec: " + err.Error(), Code: api.CodeInvalid})
		return
	}
	v.Normalize()
	if err := v.Validate(); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(api.Error{Message: err.Error(), Code: api.CodeInvalid})
		return
	}
	if err := storage.CheckVolumePath(v); err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(api.Error{Message: err.Error(), Code: api.CodeInvalid})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
