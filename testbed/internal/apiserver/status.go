package apiserver

import (
	"net/http"
	"strconv"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/k8sobj"
)

var reasons = map[int]string{
	http.StatusBadRequest:            "BadRequest",
	http.StatusNotFound:              "NotFound",
	http.StatusMethodNotAllowed:      "MethodNotAllowed",
	http.StatusConflict:              "Conflict",
	http.StatusRequestEntityTooLarge: "RequestEntityTooLarge",
	http.StatusUnsupportedMediaType:  "UnsupportedMediaType",
	http.StatusUnprocessableEntity:   "Invalid",
	http.StatusServiceUnavailable:    "ServiceUnavailable",
	http.StatusInternalServerError:   "InternalError",
}

// writeStatus sends a failed request as kube-apiserver does: an HTTP error
// code with a metav1.Status body in the negotiated format.
func writeStatus(w http.ResponseWriter, f framing.Format, code int, msg string) {
	body := statusBody(f, k8sobj.Status{Message: msg, Reason: reasons[code], Code: int32(code)})
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}

// statusBody encodes a Status response body in format f.
func statusBody(f framing.Format, st k8sobj.Status) []byte {
	switch f {
	case framing.Protobuf:
		return k8sobj.EncodeUnknown("v1", "Status", st.AppendProto(nil))
	case framing.CBOR:
		return st.AppendCBOR(nil)
	}
	return append(st.AppendJSON(nil), '\n')
}
