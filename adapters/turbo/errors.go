package turbo

import (
	"encoding/json"
	"net/http"
)

// apiError is the error body of the Vercel API that turbo parses: on a 403
// turbo reads error.code (remote_caching_disabled and friends have a meaning
// of their own) and shows error.message to the user.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteAuthError answers an authentication (401) or authorization (403)
// failure in Turborepo's JSON error shape, so turbo reports the message
// instead of failing to parse the body.
func WriteAuthError(w http.ResponseWriter, status int, msg string) {
	code := "forbidden"
	if status == http.StatusUnauthorized {
		code = "unauthorized"
	}
	writeError(w, status, code, msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: apiErrorBody{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; an encoding failure can only mean the client left.
	_ = json.NewEncoder(w).Encode(v)
}
