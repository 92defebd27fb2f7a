package upstream

import "encoding/json"

// sniffMediaType guesses a manifest's media type from its JSON when the
// upstream did not send a usable Content-Type.
func sniffMediaType(b []byte) string {
	var m struct {
		MediaType     string          `json:"mediaType"`
		SchemaVersion int             `json:"schemaVersion"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
		Signatures    json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "application/octet-stream"
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.SchemaVersion == 1 && m.Signatures != nil:
		return "application/vnd.docker.distribution.manifest.v1+prettyjws"
	case m.SchemaVersion == 1:
		return "application/vnd.docker.distribution.manifest.v1+json"
	case m.Manifests != nil:
		return "application/vnd.oci.image.index.v1+json"
	default:
		return "application/vnd.oci.image.manifest.v1+json"
	}
}
