//! etcd v3 gRPC Watch messages (pure).
