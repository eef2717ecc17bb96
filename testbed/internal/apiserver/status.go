package apiserver

import (
	"net/http"
	"strconv"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/k8sobj"
)

var reasons = map[int]string{
	http.StatusBadRequest:          "BadRequest",
	http.StatusNotFound:            "NotFound",
	http.StatusMethodNotAllowed:    "MethodNotAllowed",
	http.StatusUnprocessableEntity: "Invalid",
	http.StatusServiceUnavailable:  "ServiceUnavailable",
	http.StatusInternalServerError: "InternalError",
}

// writeStatus sends a failed request as kube-apiserver does: an HTTP error
// code with a metav1.Status body in the negotiated format.
func writeStatus(w http.ResponseWriter, f framing.Format, code int, msg string) {
	st := k8sobj.Status{Message: msg, Reason: reasons[code], Code: int32(code)}
	var body []byte
	switch f {
	case framing.Protobuf:
		body = k8sobj.EncodeUnknown("v1", "Status", st.AppendProto(nil))
	case framing.CBOR:
		body = st.AppendCBOR(nil)
	default:
		body = append(st.AppendJSON(nil), '\n')
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}
