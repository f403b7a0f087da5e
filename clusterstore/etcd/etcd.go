// Package etcd implements clusterstore.Store over etcd v3. It is the only
// package in Bulwark that imports etcd.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/bulwarkhq/bulwark/clusterstore"
)

// DefaultMaxTxnOps is the max-txn-ops Bulwark expects etcd to be configured
// with (etcd's own default is 128, too few for one plan commit).
const DefaultMaxTxnOps = 16384

// DefaultMaxRequestBytes is the max-request-bytes Bulwark configures on
// embedded etcd and the send limit Dial's client allows, so that a Txn of
// DefaultMaxTxnOps typical operations fits in one request.
const DefaultMaxRequestBytes = 32 << 20

// errWatchClosed: the client closed a watch that its caller still wanted,
// typically because the client itself was closed.
var errWatchClosed = errors.New("watch closed by the etcd client")

type store struct {
	cli *clientv3.Client
	// owned is set when Dial created cli, so Close closes it.
	owned bool
}

// New wraps cli. The caller keeps ownership: the returned Store's Close does
// not close cli.
func New(cli *clientv3.Client) clusterstore.Store {
	return &store{cli: cli}
}

// Dial connects to endpoints and checks that the cluster answers within
// dialTimeout. It has no TLS configuration: https:// endpoints are checked
// against the system's CAs and no client certificate is sent (DialTLS has
// both). The returned Store owns its client; Close closes it.
func Dial(ctx context.Context, endpoints []string, dialTimeout time.Duration) (clusterstore.Store, error) {
	return DialTLS(ctx, endpoints, dialTimeout, nil)
}

// DialTLS is Dial with TLS: with tlsConfig (pki.LoadClientTLS builds one)
// every endpoint must be https://, and the client presents tlsConfig's
// certificate to etcd. Leave tlsConfig.ServerName empty: each endpoint's
// host is then checked against the certificate of the member it reaches.
// With a nil tlsConfig it is Dial.
//
// When the cluster does not answer and TLS is in use, DialTLS then makes
// one TLS connection of its own to each https endpoint (taking up to
// dialTimeout more, and at least 2 s), so that the error says why
// (unknown CA, name mismatch, certificate refused by etcd) instead of only
// that the probe timed out.
func DialTLS(ctx context.Context, endpoints []string, dialTimeout time.Duration, tlsConfig *tls.Config) (clusterstore.Store, error) {
	if err := checkSchemes(endpoints, tlsConfig != nil); err != nil {
		return nil, fmt.Errorf("dial etcd %v: %w", endpoints, err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsConfig,
		DialTimeout: dialTimeout,
		Context:     context.WithoutCancel(ctx),
		// Requests carry up to DefaultMaxTxnOps operations; the client's
		// default 2 MiB send limit would refuse them before etcd sees them.
		MaxCallSendMsgSize: DefaultMaxRequestBytes,
		MaxCallRecvMsgSize: math.MaxInt32,
		// Errors reach callers as return values; the client's own retry
		// chatter is noise in an agent's log.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("dial etcd %v: %w", endpoints, err)
	}
	// clientv3.New does not wait for a connection; a linearizable read
	// proves that a quorum answers.
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, clusterstore.Prefix, clientv3.WithCountOnly()); err != nil {
		_ = cli.Close()
		if tlsConfig != nil || anyHTTPS(endpoints) {
			if why := diagnoseTLS(ctx, endpoints, dialTimeout, tlsConfig); why != nil {
				return nil, fmt.Errorf("dial etcd %v: probe: %w; %w", endpoints, translate(err), why)
			}
		}
		return nil, fmt.Errorf("dial etcd %v: probe: %w", endpoints, translate(err))
	}
	return &store{cli: cli, owned: true}, nil
}

// translate maps etcd errors that callers branch on to clusterstore's.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var target error
	switch rpctypes.Error(err) {
	case rpctypes.ErrLeaseNotFound:
		target = clusterstore.ErrLeaseNotFound
	case rpctypes.ErrCompacted:
		target = clusterstore.ErrCompacted
	case rpctypes.ErrFutureRev:
		target = clusterstore.ErrFutureRevision
	case rpctypes.ErrTooManyOps:
		target = clusterstore.ErrTooManyOps
	default:
		return err
	}
	// Keep etcd's message for the log, but make errors.Is work.
	return fmt.Errorf("%w (%v)", target, err)
}

func convertKV(kv *mvccpb.KeyValue) clusterstore.KeyValue {
	return clusterstore.KeyValue{
		Key:            string(kv.Key),
		Value:          kv.Value,
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
		Version:        kv.Version,
		Lease:          clusterstore.LeaseID(kv.Lease),
	}
}

func (s *store) Get(ctx context.Context, key string) (clusterstore.KeyValue, bool, int64, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return clusterstore.KeyValue{}, false, 0, fmt.Errorf("get %q: %w", key, translate(err))
	}
	if len(resp.Kvs) == 0 {
		return clusterstore.KeyValue{}, false, resp.Header.Revision, nil
	}
	return convertKV(resp.Kvs[0]), true, resp.Header.Revision, nil
}

func (s *store) List(ctx context.Context, prefix string, rev int64) ([]clusterstore.KeyValue, int64, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.cli.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("list %q at %d: %w", prefix, rev, translate(err))
	}
	kvs := make([]clusterstore.KeyValue, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs = append(kvs, convertKV(kv))
	}
	// The header carries the current revision even for a read in the past.
	atRev := rev
	if atRev == 0 {
		atRev = resp.Header.Revision
	}
	return kvs, atRev, nil
}

func toCmp(c clusterstore.Cond) (clientv3.Cmp, error) {
	var op string
	switch c.Cmp {
	case clusterstore.Equal:
		op = "="
	case clusterstore.NotEqual:
		op = "!="
	case clusterstore.Greater:
		op = ">"
	case clusterstore.Less:
		op = "<"
	default:
		return clientv3.Cmp{}, fmt.Errorf("condition on %q: unknown comparison %d", c.Key, c.Cmp)
	}
	switch c.Target {
	case clusterstore.TargetCreateRevision:
		return clientv3.Compare(clientv3.CreateRevision(c.Key), op, c.Rev), nil
	case clusterstore.TargetModRevision:
		return clientv3.Compare(clientv3.ModRevision(c.Key), op, c.Rev), nil
	case clusterstore.TargetValue:
		return clientv3.Compare(clientv3.Value(c.Key), op, string(c.Value)), nil
	default:
		return clientv3.Cmp{}, fmt.Errorf("condition on %q: unknown target %d", c.Key, c.Target)
	}
}

func toOp(o clusterstore.Op) (clientv3.Op, error) {
	switch o.Type {
	case clusterstore.OpPut:
		if o.Lease != 0 {
			return clientv3.OpPut(o.Key, string(o.Value), clientv3.WithLease(clientv3.LeaseID(o.Lease))), nil
		}
		return clientv3.OpPut(o.Key, string(o.Value)), nil
	case clusterstore.OpDelete:
		return clientv3.OpDelete(o.Key), nil
	case clusterstore.OpDeletePrefix:
		return clientv3.OpDelete(o.Key, clientv3.WithPrefix()), nil
	default:
		return clientv3.Op{}, fmt.Errorf("op on %q: unknown type %d", o.Key, o.Type)
	}
}

func (s *store) Txn(ctx context.Context, conds []clusterstore.Cond, ops []clusterstore.Op) (bool, int64, error) {
	cmps := make([]clientv3.Cmp, 0, len(conds))
	for _, c := range conds {
		cmp, err := toCmp(c)
		if err != nil {
			return false, 0, fmt.Errorf("txn: %w", err)
		}
		cmps = append(cmps, cmp)
	}
	eops := make([]clientv3.Op, 0, len(ops))
	for _, o := range ops {
		op, err := toOp(o)
		if err != nil {
			return false, 0, fmt.Errorf("txn: %w", err)
		}
		eops = append(eops, op)
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(eops...).Commit()
	if err != nil {
		return false, 0, fmt.Errorf("txn with %d conditions and %d operations: %w", len(conds), len(ops), translate(err))
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// Watch implements clusterstore.Store. For fromRev 0 it first reads the
// current revision, so that "from now" means "every change after Watch
// returns": etcd registers a watch asynchronously, and a write made just
// after the call could otherwise be missed.
func (s *store) Watch(ctx context.Context, prefix string, fromRev int64) <-chan clusterstore.WatchResponse {
	out := make(chan clusterstore.WatchResponse)
	var startErr error
	if fromRev == 0 {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithCountOnly())
		if err != nil {
			startErr = fmt.Errorf("read current revision: %w", translate(err))
		} else {
			fromRev = resp.Header.Revision + 1
		}
	}
	go s.watch(ctx, prefix, fromRev, startErr, out)
	return out
}

func (s *store) watch(ctx context.Context, prefix string, fromRev int64, startErr error, out chan<- clusterstore.WatchResponse) {
	defer close(out)
	fail := func(err error) {
		select {
		case out <- clusterstore.WatchResponse{Err: fmt.Errorf("watch %q from %d: %w", prefix, fromRev, err)}:
		case <-ctx.Done():
		}
	}
	if startErr != nil {
		fail(startErr)
		return
	}

	// Cancelling wctx when we stop (also on error) releases the etcd watch.
	// WithRequireLeader makes a member cut off from its cluster end the watch
	// instead of going silent, so the caller re-reads elsewhere.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(fromRev))
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return
		case resp, ok = <-wch:
		}
		if !ok {
			if ctx.Err() == nil {
				fail(errWatchClosed)
			}
			return
		}
		if err := resp.Err(); err != nil {
			if resp.CompactRevision != 0 {
				err = fmt.Errorf("%w (compacted at %d)", clusterstore.ErrCompacted, resp.CompactRevision)
			} else {
				err = translate(err)
			}
			fail(err)
			return
		}
		// etcd may batch several revisions in one response; ours carry one
		// revision each. Events within a response are in revision order.
		evs := resp.Events
		for len(evs) > 0 {
			rev := evs[0].Kv.ModRevision
			n := 1
			for n < len(evs) && evs[n].Kv.ModRevision == rev {
				n++
			}
			batch := make([]clusterstore.Event, 0, n)
			for _, ev := range evs[:n] {
				e := clusterstore.Event{KV: convertKV(ev.Kv)}
				if ev.Type == clientv3.EventTypeDelete {
					e.Type = clusterstore.EventDelete
				}
				batch = append(batch, e)
			}
			evs = evs[n:]
			select {
			case out <- clusterstore.WatchResponse{Revision: rev, Events: batch}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Grant rounds ttl up to whole seconds, etcd's unit. etcd also raises TTLs
// below its minimum (1.5 election timeouts, 2 s with default settings).
func (s *store) Grant(ctx context.Context, ttl time.Duration) (clusterstore.LeaseID, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("grant: ttl %v must be positive", ttl)
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	resp, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return 0, fmt.Errorf("grant %ds: %w", secs, translate(err))
	}
	if resp.Error != "" {
		return 0, fmt.Errorf("grant %ds: %s", secs, resp.Error)
	}
	return clusterstore.LeaseID(resp.ID), nil
}

func (s *store) KeepAliveOnce(ctx context.Context, id clusterstore.LeaseID) (time.Duration, error) {
	resp, err := s.cli.KeepAliveOnce(ctx, clientv3.LeaseID(id))
	if err != nil {
		return 0, fmt.Errorf("keepalive %x: %w", id, translate(err))
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

func (s *store) Revoke(ctx context.Context, id clusterstore.LeaseID) error {
	if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil {
		return fmt.Errorf("revoke %x: %w", id, translate(err))
	}
	return nil
}

func (s *store) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}
