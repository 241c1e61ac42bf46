package maxcompute

import (
	"fmt"
	"time"

	"github.com/aliyun/aliyun-odps-go-sdk/odps"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/account"
	"github.com/aliyun/aliyun-odps-go-sdk/odps/tunnel"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// client is one connection to a project's table: the REST client and,
// once resolved, the tunnel. It is what Sink and the inspection helpers
// share.
type client struct {
	mc     *connector.MaxComputeSpec
	odps   *odps.Odps
	tunnel *tunnel.Tunnel // nil until resolveTunnel
	opts   options
	// ledgers is the cached listing of the ledger table's partitions
	// (see ledgerListed).
	ledgers ledgerList
}

func newClient(spec *connector.Spec, creds connector.Credentials, opts []Option) (*client, error) {
	if spec == nil || spec.Sink.MaxCompute == nil {
		return nil, sink.Permanent("InvalidSpec", fmt.Errorf("maxcompute: spec has no sink.maxcompute section"))
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, sink.Permanent("InvalidSpec", err)
	}
	mc := spec.Sink.MaxCompute
	if creds.AccessKeyID == "" || creds.AccessKeySecret == "" {
		return nil, sink.Permanent("AccessDenied", fmt.Errorf("maxcompute: credentials %q have no access key", mc.Credentials))
	}
	var acct account.Account = account.NewAliyunAccount(creds.AccessKeyID, creds.AccessKeySecret)
	if creds.SecurityToken != "" {
		acct = account.NewStsAccount(creds.AccessKeyID, creds.AccessKeySecret, creds.SecurityToken)
	}
	o2 := odps.NewOdps(acct, mc.Endpoint)
	o2.SetDefaultProjectName(mc.Project)
	if o.httpTimeout > 0 {
		o2.SetHttpTimeout(o.httpTimeout)
	}
	return &client{mc: mc, odps: o2, opts: o}, nil
}

// resolveTunnel builds the tunnel client once: from the spec's tunnel
// endpoint, else by asking the service. Not safe for concurrent use; Sink
// calls it under its mutex.
func (c *client) resolveTunnel() error {
	if c.tunnel != nil {
		return nil
	}
	endpoint := c.mc.TunnelEndpoint
	if endpoint == "" {
		ep, err := c.odps.Project(c.mc.Project).GetTunnelEndpoint()
		if err != nil {
			return classify(fmt.Sprintf("tunnel endpoint of project %s", c.mc.Project), err)
		}
		endpoint = ep
	}
	t := tunnel.NewTunnel(c.odps, endpoint)
	t.SetHttpTimeout(c.opts.tunnelTimeout)
	t.SetTcpConnectionTimeout(30 * time.Second)
	c.tunnel = t
	return nil
}

// name is project.table, for messages.
func (c *client) name() string { return c.mc.Project + "." + c.mc.Table }
