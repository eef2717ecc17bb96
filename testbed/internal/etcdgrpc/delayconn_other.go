//go:build !(linux && (amd64 || arm64))

package etcdgrpc

import (
	"errors"
	"net"
	"time"
)

const delaySupported = false

func newDelayConn(tc *net.TCPConn, delay time.Duration) (net.Conn, error) {
	return nil, errors.New("etcdgrpc: a read delay needs linux/amd64 or linux/arm64")
}
