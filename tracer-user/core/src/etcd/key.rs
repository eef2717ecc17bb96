//! Kubernetes object keys in etcd: `/registry/<resource>/<ns>/<name>` and
//! its historical variants, mapped back to resource, namespace and name so
//! that etcd events can be joined to watch events.

/// kube-apiserver's `--etcd-prefix` default.
pub const DEFAULT_PREFIX: &str = "/registry";

/// Whether a resource's objects live in namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// The object a key names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKey {
    /// The group when the key carries one (`/registry/<group>/...`, used for
    /// custom resources and a few aggregated built-ins); `""` otherwise,
    /// which means core or a built-in group the key does not spell.
    pub group: String,
    /// Plural resource name (`minions` is reported as `nodes`,
    /// `services/endpoints` as `endpoints`).
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// The segments of `key` after `prefix` (`["pods", "default", "nginx"]`),
/// or `None` if the key is not under the prefix. A watch prefix such as
/// `/registry/pods/` ends with an empty segment.
#[must_use]
pub fn registry_segments<'a>(key: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
    Some(rest.split('/').collect())
}

/// Parses an object key under [`DEFAULT_PREFIX`], guessing scope from the
/// number of segments (see [`parse_registry_key_with`]).
#[must_use]
pub fn parse_registry_key(key: &str) -> Option<ObjectKey> {
    parse_registry_key_with(key, DEFAULT_PREFIX, |_, _| None)
}

/// Parses an object key. `scope(group, resource)` tells, when the caller
/// knows (from discovery), whether a resource is namespaced; with `None`
/// the segment count decides.
///
/// Layouts:
/// * `<resource>/<name>` — cluster-scoped;
/// * `<resource>/<ns>/<name>` — namespaced;
/// * `<group>/<resource>/<name>` and `<group>/<resource>/<ns>/<name>` —
///   when the first segment holds a dot (API groups of custom resources
///   must), or when `scope` knows the group and resource;
/// * `minions/<name>` (nodes), `services/specs/<ns>/<name>` (services),
///   `services/endpoints/<ns>/<name>` (endpoints).
///
/// `None` for prefixes (an empty segment) and layouts that fit none of
/// these.
pub fn parse_registry_key_with(
    key: &str,
    prefix: &str,
    scope: impl Fn(&str, &str) -> Option<Scope>,
) -> Option<ObjectKey> {
    let segs = registry_segments(key, prefix)?;
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let obj = |group: &str, resource: &str, ns: Option<&str>, name: &str| ObjectKey {
        group: group.to_owned(),
        resource: resource.to_owned(),
        namespace: ns.map(str::to_owned),
        name: name.to_owned(),
    };
    match segs.as_slice() {
        ["minions", name] => Some(obj("", "nodes", None, name)),
        ["services", "specs", ns, name] => Some(obj("", "services", Some(ns), name)),
        ["services", "endpoints", ns, name] => Some(obj("", "endpoints", Some(ns), name)),
        [group, resource, name] if group.contains('.') => Some(obj(group, resource, None, name)),
        [group, resource, ns, name] if group.contains('.') => {
            Some(obj(group, resource, Some(ns), name))
        }
        [resource, name] => Some(obj("", resource, None, name)),
        // `<resource>/<ns>/<name>`, unless the caller knows `<a>/<b>` as a
        // cluster-scoped resource of a group without a dot.
        [a, b, c] => match scope(a, b) {
            Some(Scope::Cluster) => Some(obj(a, b, None, c)),
            _ => Some(obj("", a, Some(b), c)),
        },
        [group, resource, ns, name] if scope(group, resource) == Some(Scope::Namespaced) => {
            Some(obj(group, resource, Some(ns), name))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(key: &str) -> Option<(String, String, Option<String>, String)> {
        parse_registry_key(key).map(|o| (o.group, o.resource, o.namespace, o.name))
    }

    fn t(
        g: &str,
        r: &str,
        ns: Option<&str>,
        n: &str,
    ) -> Option<(String, String, Option<String>, String)> {
        Some((g.into(), r.into(), ns.map(Into::into), n.into()))
    }

    #[test]
    fn common_layouts() {
        assert_eq!(
            k("/registry/pods/default/nginx"),
            t("", "pods", Some("default"), "nginx")
        );
        assert_eq!(
            k("/registry/namespaces/kube-system"),
            t("", "namespaces", None, "kube-system")
        );
        assert_eq!(
            k("/registry/minions/node-1"),
            t("", "nodes", None, "node-1")
        );
        assert_eq!(
            k("/registry/services/specs/default/kubernetes"),
            t("", "services", Some("default"), "kubernetes")
        );
        assert_eq!(
            k("/registry/services/endpoints/default/kubernetes"),
            t("", "endpoints", Some("default"), "kubernetes")
        );
        assert_eq!(
            k("/registry/stable.example.com/crontabs/ns1/my-cron"),
            t("stable.example.com", "crontabs", Some("ns1"), "my-cron")
        );
        assert_eq!(
            k("/registry/apiregistration.k8s.io/apiservices/v1.apps"),
            t("apiregistration.k8s.io", "apiservices", None, "v1.apps")
        );
        assert_eq!(
            k("/registry/deployments/default/web.v2"),
            t("", "deployments", Some("default"), "web.v2")
        );
    }

    #[test]
    fn prefixes_and_foreign_keys() {
        assert_eq!(k("/registry/pods/"), None);
        assert_eq!(k("/registry/pods"), None);
        assert_eq!(k("/registry"), None);
        assert_eq!(k("/other/pods/a/b"), None);
        assert_eq!(k("/registryx/pods/a/b"), None);
        assert_eq!(k("/registry/a/b/c/d/e"), None);
        assert_eq!(
            registry_segments("/registry/pods/", DEFAULT_PREFIX),
            Some(vec!["pods", ""])
        );
    }

    #[test]
    fn scope_hint_and_custom_prefix() {
        let hint = |g: &str, r: &str| match (g, r) {
            ("nodot", "widgets") => Some(Scope::Cluster),
            ("example", "gadgets") => Some(Scope::Namespaced),
            _ => None,
        };
        let o = parse_registry_key_with("/registry/nodot/widgets/x", DEFAULT_PREFIX, hint).unwrap();
        assert_eq!(
            (
                o.group.as_str(),
                o.resource.as_str(),
                o.namespace,
                o.name.as_str()
            ),
            ("nodot", "widgets", None, "x")
        );
        // Unknown to the hint: resource/namespace/name.
        let o = parse_registry_key_with("/registry/pods/ns/x", DEFAULT_PREFIX, hint).unwrap();
        assert_eq!(o.namespace.as_deref(), Some("ns"));
        let o = parse_registry_key_with("/registry/example/gadgets/ns/g", DEFAULT_PREFIX, hint)
            .unwrap();
        assert_eq!(o.namespace.as_deref(), Some("ns"));
        let o = parse_registry_key_with("/k8s/pods/a/b", "/k8s", |_, _| None).unwrap();
        assert_eq!(o.name, "b");
    }
}
