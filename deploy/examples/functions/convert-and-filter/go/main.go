// Command convert-and-filter is seed 002's convertAndFilter as a dumpflow
// function: it turns a trade log record
//
//	{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,
//	 "returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]",...}
//
// into
//
//	{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"return has no deal return error",
//	 "returnMessage":"错误: 缺少 **c 参数","requestId":"u3Becr8iz*"}
//
// with the timestamp in the producers' time zone (GMT+08:00), and drops the
// records whose returnCode is 0. A record that lacks a field, or whose
// returnMessage is not "error[message][seqId:id]", fails with an error.
//
// Build it with ./build.sh (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	dumpflow "github.com/dumpflow/dumpflow/transform/wasm/sdk/go"
)

func init() { dumpflow.Handle(convertAndFilter) }

func main() {}

// producerZone is the producers' time zone, GMT+08:00.
var producerZone = time.FixedZone("GMT+08:00", 8*60*60)

// source holds the fields of a trade log record that the function reads;
// pointers tell a missing field from a zero one.
type source struct {
	Timestamp     *int64  `json:"timestamp"`
	ReturnCode    *int64  `json:"returnCode"`
	ReturnMessage *string `json:"returnMessage"`
}

// target is the output, fields in the seed's order.
type target struct {
	Timestamp     string `json:"timestamp"`
	ReturnCode    int64  `json:"returnCode"`
	ReturnError   string `json:"returnError"`
	ReturnMessage string `json:"returnMessage"`
	RequestID     string `json:"requestId"`
}

func convertAndFilter(r dumpflow.Record) ([]dumpflow.Record, error) {
	var src source
	if err := json.Unmarshal(r.Value, &src); err != nil {
		return nil, fmt.Errorf("value is not a trade log record: %w", err)
	}
	switch {
	case src.ReturnCode == nil:
		return nil, errors.New("returnCode: missing")
	case src.Timestamp == nil:
		return nil, errors.New("timestamp: missing")
	case src.ReturnMessage == nil:
		return nil, errors.New("returnMessage: missing")
	}
	if *src.ReturnCode == 0 { // drop the successes
		return nil, nil
	}

	// "return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]", split as the seed's Python does.
	message := strings.Split(*src.ReturnMessage, "][")
	if len(message) < 2 {
		return nil, fmt.Errorf("returnMessage %.40q: want \"error[message][seqId:id]\" (no \"][\")", *src.ReturnMessage)
	}
	errorInfo := strings.Split(message[0], "[")
	if len(errorInfo) < 2 {
		return nil, fmt.Errorf("returnMessage %.40q: want \"error[message][seqId:id]\" (no \"[\" before \"][\")", *src.ReturnMessage)
	}
	out := target{
		Timestamp:     time.Unix(*src.Timestamp, 0).In(producerZone).Format(time.DateTime),
		ReturnCode:    *src.ReturnCode,
		ReturnError:   errorInfo[0],
		ReturnMessage: errorInfo[1],
		RequestID:     strings.ReplaceAll(strings.ReplaceAll(message[1], "]", ""), "seqId:", ""),
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	r.Value = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return []dumpflow.Record{r}, nil
}
