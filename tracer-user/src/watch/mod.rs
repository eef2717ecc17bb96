//! Kubernetes watch requests and watch-event streams (pure).
