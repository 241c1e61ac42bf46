package odpsemu

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
)

// apiError is an error the emulator reports to a client with the service's code.
//
// The REST API (/api/...) answers with an XML body and the tunnel with a JSON body; the SDK
// parses both into restclient.ErrorMessage (odps/restclient/error.go: NewErrorMessage tries XML
// first, then JSON), so restclient.HttpError.ErrorMessage.ErrorCode carries Code.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Tunnel error codes, as listed in MaxCompute's "Tunnel error messages" documentation.
const (
	codeNoSuchProject        = "NoSuchProject"
	codeNoSuchTable          = "NoSuchTable"
	codeNoSuchPartition      = "NoSuchPartition"
	codeNoSuchUpload         = "NoSuchUpload"
	codeNoSuchDownload       = "NoSuchDownload"
	codeStatusConflict       = "StatusConflict"
	codeMalformedDataStream  = "MalformedDataStream"
	codeCorruptedDataStream  = "CorruptedDataStream"
	codeInvalidBlockID       = "InvalidBlockID"
	codeInvalidPartitionSpec = "InvalidPartitionSpec"
	codeMissingPartitionSpec = "MissingPartitionSpec"
	codeInvalidRowRange      = "InvalidRowRange"
	codeInvalidColumnSpec    = "InvalidColumnSpec"
	codeInvalidResourceSpec  = "InvalidResourceSpec"
	codeInvalidArgument      = "InvalidArgument"
	codeMethodNotAllowed     = "MethodNotAllowed"
	codeUnauthorized         = "Unauthorized"
	codeInternalServerError  = "InternalServerError"
	codeServiceUnavailable   = "ServiceUnavailable"
	codeFlowExceeded         = "FlowExceeded"
)

// REST API error codes.
const (
	codeNoSuchObject      = "NoSuchObject"
	codeSignatureNotMatch = "SignatureNotMatch"
	codeInvalidParameter  = "InvalidParameter"
)

func errNoSuchProjectTunnel(project string) *apiError {
	return newAPIError(http.StatusNotFound, codeNoSuchProject, "The specified project name does not exist: %s", project)
}

func errNoSuchTableTunnel(project, table string) *apiError {
	return newAPIError(http.StatusNotFound, codeNoSuchTable, "The specified table name does not exist: %s.%s", project, table)
}

func errNoSuchPartitionTunnel(spec string) *apiError {
	return newAPIError(http.StatusNotFound, codeNoSuchPartition, "The specified partition does not exist: %s", spec)
}

// errSessionClosed is what the service answers when an upload session that was already
// committed is written to or committed again.
func errSessionClosed() *apiError {
	return newAPIError(http.StatusConflict, codeStatusConflict,
		"You cannot complete the specified operation under the current upload or download status.")
}

func errSessionExpired(kind string) *apiError {
	return newAPIError(http.StatusConflict, codeStatusConflict, "The %s session is expired", kind)
}

// restErrorBody mirrors the XML error document of the MaxCompute REST API.
type restErrorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   cdata    `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

// tunnelErrorBody mirrors the JSON error document of the tunnel service.
type tunnelErrorBody struct {
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	RequestID string `json:"RequestId"`
}

type cdata struct {
	Value string `xml:",cdata"`
}

func writeRESTError(w http.ResponseWriter, reqID, host string, e *apiError) {
	body, _ := xml.Marshal(restErrorBody{Code: e.Code, Message: cdata{e.Message}, RequestID: reqID, HostID: host})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

func writeTunnelError(w http.ResponseWriter, reqID string, e *apiError) {
	body, _ := json.Marshal(tunnelErrorBody{Code: e.Code, Message: e.Message, RequestID: reqID})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
