package transform

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// seedYAML is seed 002's convertAndFilter as built-in steps (docs/transforms.md).
const seedYAML = `
transforms:
  - name: drop-ok
    type: filter
    if: value.returnCode != 0
  - type: time
    field: timestamp
    parse: unix
    format: "%Y-%m-%d %H:%M:%S"
    zone: GMT+08:00
  - type: extract
    field: returnMessage
    regex: '^(?P<returnError>[^\[]*)\[(?P<returnMessage>[^\]]*)\]\[seqId:(?P<requestId>[^\]]*)\]$'
  - type: keep
    fields: [timestamp, returnCode, returnError, returnMessage, requestId]
`

const (
	seedSource = `{"version":1,"componentName":"trade","timestamp":1595944295,"eventId":9128499,"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]","seqId":"@kibana-highlighted-field@u3Becr8iz@/kibana-highlighted-field@*"}`
	seedTarget = `{"timestamp":"2020-07-28 21:51:35","returnCode":101103,"returnError":"return has no deal return error","returnMessage":"错误: 缺少 **c 参数","requestId":"u3Becr8iz*"}`
	seedOK     = `{"version":1,"componentName":"trade","timestamp":1595944296,"eventId":9128500,"returnValue":0,"returnCode":0,"returnMessage":"ok","seqId":"x"}`
)

func seedChain(t testing.TB) *Chain {
	var doc struct {
		Transforms []StepSpec `json:"transforms"`
	}
	require.NoError(t, yaml.UnmarshalStrict([]byte(seedYAML), &doc))
	c, err := Compile(doc.Transforms, Options{})
	require.NoError(t, err)
	return c
}

func TestSeedConvertAndFilter(t *testing.T) {
	c := seedChain(t)
	ctx := context.Background()
	run, err := c.Begin(ctx)
	require.NoError(t, err)
	defer run.Close(ctx)

	in := &Record{Topic: "logs", Offset: 7, Timestamp: time.UnixMilli(1595944295000), Value: []byte(seedSource)}
	out, err := run.Apply(ctx, in)
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, seedTarget, string(out[0].Value))
	require.Equal(t, seedSource, string(in.Value), "the input record is untouched")

	out, err = run.Apply(ctx, &Record{Value: []byte(seedOK)})
	require.NoError(t, err)
	require.Empty(t, out, "returnCode 0 is dropped")

	require.Equal(t, []StepCounts{
		{Step: "drop-ok", Type: "filter", In: 2, Out: 1, Dropped: 1},
		{Step: "time#1", Type: "time", In: 1, Out: 1},
		{Step: "extract#2", Type: "extract", In: 1, Out: 1},
		{Step: "keep#3", Type: "keep", In: 1, Out: 1},
	}, run.Counts())
}
