//! Classifying a kube-apiserver request from its method, `:path` and a few
//! headers, the way the server's `RequestInfoFactory` does, so that WATCH
//! and LIST are told apart exactly as the server counts them.

use super::query::{QueryParams, go_bool, percent_decode};

/// The Kubernetes verb of a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// A long-running watch: `?watch=` (not `0`/`false`) on a collection,
    /// or the legacy `/watch/` path (collection or named object).
    Watch,
    /// GET on a collection without `watch`.
    List,
    /// GET (or HEAD) on a named object.
    Get,
    Create,
    Update,
    Patch,
    Delete,
    /// DELETE on a collection.
    DeleteCollection,
    /// Any other method, verbatim (uppercase as sent).
    Other(String),
}

impl Verb {
    /// The server's spelling, as in `apiserver_request_total{verb=...}`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Watch => "WATCH",
            Self::List => "LIST",
            Self::Get => "GET",
            Self::Create => "POST",
            Self::Update => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::DeleteCollection => "DELETECOLLECTION",
            Self::Other(m) => m,
        }
    }
}

/// The `resourceVersion` query parameter, whose three cases have different
/// semantics: absent = most recent (quorum read), `0` = any (served from the
/// watch cache), anything else = that version or newer (with
/// `resourceVersionMatch`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum ResourceVersion {
    /// Absent or empty (the server treats both as unset).
    #[default]
    Absent,
    Zero,
    Exact(String),
}

/// What a resource request addresses.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ResourceTarget {
    /// API group; `""` for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    /// Plural resource name (`pods`, `endpointslices`).
    pub resource: String,
    /// `status`, `scale`, `log`, ... when addressed.
    pub subresource: Option<String>,
    /// For a `namespaces/{ns}/...` path; for the Namespace object itself
    /// (`/api/v1/namespaces/{name}`) it is that name, as the server sets it.
    pub namespace: Option<String>,
    /// The object name when the path names one.
    pub name: Option<String>,
}

impl ResourceTarget {
    /// The resource as watchtrace names it in events and labels: the
    /// plural, with `.group` for a named group (`pods`,
    /// `leases.coordination.k8s.io`), as `kubectl get` spells it.
    #[must_use]
    pub fn qualified(&self) -> String {
        qualified(&self.resource, &self.group)
    }
}

/// `resource.group`, or `resource` for the core group.
#[must_use]
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() || resource.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// The list/watch query parameters (`metav1.ListOptions` on the wire).
///
/// `continue` tokens are opaque and encode keys, so only their presence is
/// kept.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListOptions {
    pub resource_version: ResourceVersion,
    /// `NotOlderThan` or `Exact`, verbatim.
    pub resource_version_match: Option<String>,
    pub allow_watch_bookmarks: bool,
    /// Tri-state like the server's `*bool`: absent is `None`.
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`; the server ignores `timeout=` for watches. `None`
    /// when absent or not an integer.
    pub timeout_seconds: Option<i64>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// `limit` when present and an integer.
    pub limit: Option<i64>,
    pub has_continue: bool,
    /// `shardSelector` (sharded list and watch, KEP-5866), verbatim.
    pub shard_selector: Option<String>,
}

/// A `shardSelector` of the form `shardRange(field,'start','end')`: the
/// field hashed and the half-open range of hash values this request takes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ShardRange {
    pub field: String,
    pub start: String,
    pub end: String,
}

impl ShardRange {
    /// Parses `shardRange(object.metadata.uid,'0x0','0x8000000000000000')`;
    /// `None` for any other form (kept verbatim in the request only).
    #[must_use]
    pub fn parse(selector: &str) -> Option<Self> {
        let args = selector
            .trim()
            .strip_prefix("shardRange(")?
            .strip_suffix(')')?;
        let mut parts = args
            .split(',')
            .map(|p| p.trim().trim_matches(|c| c == '\'' || c == '"').to_owned());
        let range = Self {
            field: parts.next()?,
            start: parts.next()?,
            end: parts.next()?,
        };
        (parts.next().is_none() && !range.field.is_empty()).then_some(range)
    }
}

/// A classified HTTP request to kube-apiserver (metadata only: no bodies,
/// no `authorization`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    /// The HTTP method as sent.
    pub method: String,
    pub verb: Verb,
    /// The path (percent-decoded) without the query.
    pub path: String,
    /// The deprecated `/watch/` path form was used.
    pub legacy_watch_path: bool,
    /// `None` for non-resource URLs (`/healthz`, `/version`, discovery).
    pub target: Option<ResourceTarget>,
    pub options: ListOptions,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    pub content_type: Option<String>,
}

impl ApiRequest {
    /// Classifies a request. `path_and_query` is the HTTP/2 `:path` (or the
    /// HTTP/1.1 request target); header names are matched
    /// case-insensitively, and only `user-agent`, `accept` and
    /// `content-type` are kept.
    pub fn parse<I, K, V>(method: &str, path_and_query: &str, headers: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (raw_path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        // A fragment never reaches the server, but be safe.
        let query = query.split('#').next().unwrap_or_default();
        let query = QueryParams::parse(query);
        let path = percent_decode_path(raw_path);

        let mut user_agent = None;
        let mut accept = None;
        let mut content_type = None;
        for (k, v) in headers {
            let slot = match k.as_ref().to_ascii_lowercase().as_str() {
                "user-agent" => &mut user_agent,
                "accept" => &mut accept,
                "content-type" => &mut content_type,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.as_ref().to_owned());
            }
        }

        let options = list_options(&query);
        let (target, legacy_watch_path) = match parse_resource_path(&path) {
            Some((t, legacy)) => (Some(t), legacy),
            None => (None, false),
        };
        let verb = classify(method, target.as_ref(), legacy_watch_path, &query);
        Self {
            method: method.to_owned(),
            verb,
            path,
            legacy_watch_path,
            target,
            options,
            user_agent,
            accept,
            content_type,
        }
    }

    #[must_use]
    pub fn is_watch(&self) -> bool {
        self.verb == Verb::Watch
    }

    /// A streaming list (KEP-3157): a watch that first replays the current
    /// state and ends it with an `initial-events-end` bookmark.
    #[must_use]
    pub fn is_watch_list(&self) -> bool {
        self.is_watch() && self.options.send_initial_events == Some(true)
    }

    /// The client offered protobuf, so the watch body will likely be
    /// length-delimited protobuf (the response `content-type` decides).
    #[must_use]
    pub fn accepts_protobuf(&self) -> bool {
        self.accept
            .as_deref()
            .is_some_and(|a| a.contains("application/vnd.kubernetes.protobuf"))
    }

    /// The object a list or watch is narrowed to with
    /// `fieldSelector=metadata.name=X` (how client-go watches one object, and
    /// how the server fills in `RequestInfo.Name`).
    #[must_use]
    pub fn selected_name(&self) -> Option<&str> {
        let sel = self.options.field_selector.as_deref()?;
        // `metadata.name!=x` does not strip as `metadata.name=`, so only
        // equality terms match; other terms of the selector are ignored.
        sel.split(',')
            .map(str::trim)
            .find_map(|term| {
                term.strip_prefix("metadata.name==")
                    .or_else(|| term.strip_prefix("metadata.name="))
            })
            .filter(|v| !v.is_empty())
    }
}

fn percent_decode_path(p: &str) -> String {
    // Paths decode `%XX` but not `+` (that is a query convention).
    if !p.contains('%') {
        return p.to_owned();
    }
    let protected = p.replace('+', "%2B");
    percent_decode(&protected).map_or_else(|| p.to_owned(), |s| s.into_owned())
}

fn list_options(q: &QueryParams) -> ListOptions {
    let resource_version = match q.first("resourceVersion") {
        None | Some("") => ResourceVersion::Absent,
        Some("0") => ResourceVersion::Zero,
        Some(v) => ResourceVersion::Exact(v.to_owned()),
    };
    let nonempty = |k: &str| q.first(k).filter(|v| !v.is_empty()).map(str::to_owned);
    ListOptions {
        resource_version,
        resource_version_match: nonempty("resourceVersionMatch"),
        allow_watch_bookmarks: q.first("allowWatchBookmarks").is_some_and(go_bool),
        send_initial_events: q.first("sendInitialEvents").map(go_bool),
        timeout_seconds: q.first("timeoutSeconds").and_then(|v| v.parse().ok()),
        label_selector: nonempty("labelSelector"),
        field_selector: nonempty("fieldSelector"),
        limit: q.first("limit").and_then(|v| v.parse().ok()),
        has_continue: q.first("continue").is_some_and(|v| !v.is_empty()),
        shard_selector: nonempty("shardSelector"),
    }
}

/// Namespace subresources that do not start a nested resource
/// (`/api/v1/namespaces/{ns}/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Parses `/api/{v}/...` and `/apis/{g}/{v}/...`; `None` for anything else.
/// Returns the target and whether the legacy `/watch/` segment was used.
fn parse_resource_path(path: &str) -> Option<(ResourceTarget, bool)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", rest @ ..] => ("", rest),
        // `/apis` and `/apis/{g}` are discovery, not resources.
        ["apis", g, rest @ ..] if rest.len() >= 2 => (*g, rest),
        _ => return None,
    };
    let [version, rest @ ..] = rest else {
        return None;
    };
    if rest.is_empty() || rest[0].is_empty() {
        // `/api/v1`: discovery of a group version.
        return None;
    }
    let (legacy_watch, rest) = match rest {
        // `proxy` is the other special path verb; it is not a watch and the
        // server treats what follows as opaque.
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    let mut t = ResourceTarget {
        group: group.to_owned(),
        version: (*version).to_owned(),
        ..ResourceTarget::default()
    };
    let mut parts = rest;
    if parts[0] == "namespaces" && parts.len() > 1 {
        t.namespace = Some(parts[1].to_owned());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts = &parts[2..];
        }
    }
    t.resource = parts[0].to_owned();
    if let Some(name) = parts.get(1) {
        t.name = Some((*name).to_owned());
    }
    if let Some(sub) = parts.get(2) {
        t.subresource = Some((*sub).to_owned());
    }
    Some((t, legacy_watch))
}

fn classify(
    method: &str,
    target: Option<&ResourceTarget>,
    legacy_watch: bool,
    q: &QueryParams,
) -> Verb {
    let named = target.is_some_and(|t| t.name.is_some());
    if legacy_watch {
        return Verb::Watch;
    }
    match method.to_ascii_uppercase().as_str() {
        // Only a collection GET becomes LIST or WATCH: the server serves a
        // GET on a named object with the get handler whatever `watch` says.
        "GET" | "HEAD" if target.is_some() && !named => {
            if q.first("watch").is_some_and(go_bool) {
                Verb::Watch
            } else {
                Verb::List
            }
        }
        "GET" | "HEAD" => Verb::Get,
        "POST" => Verb::Create,
        "PUT" => Verb::Update,
        "PATCH" => Verb::Patch,
        "DELETE" if target.is_some() && !named => Verb::DeleteCollection,
        "DELETE" => Verb::Delete,
        other => Verb::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> ApiRequest {
        ApiRequest::parse("GET", path, [("User-Agent", "kubelet/v1.30")])
    }

    #[test]
    fn kubelet_secret_watch_from_issue_74412() {
        let r = get(
            "/api/v1/namespaces/test-93ne60-1/secrets?fieldSelector=metadata.name%3Ddefault-token-pkdz9&resourceVersion=44330&timeout=9m11s&timeoutSeconds=551&watch=true",
        );
        assert_eq!(r.verb, Verb::Watch);
        let t = r.target.as_ref().unwrap();
        assert_eq!(t.group, "");
        assert_eq!(t.version, "v1");
        assert_eq!(t.resource, "secrets");
        assert_eq!(t.namespace.as_deref(), Some("test-93ne60-1"));
        assert_eq!(t.name, None);
        assert_eq!(
            r.options.resource_version,
            ResourceVersion::Exact("44330".into())
        );
        assert_eq!(r.options.timeout_seconds, Some(551));
        assert_eq!(
            r.options.field_selector.as_deref(),
            Some("metadata.name=default-token-pkdz9")
        );
        assert_eq!(r.selected_name(), Some("default-token-pkdz9"));
        assert_eq!(r.user_agent.as_deref(), Some("kubelet/v1.30"));
        assert!(!r.legacy_watch_path);
    }

    #[test]
    fn kube_proxy_endpointslice_watch_from_pr_98141() {
        let r = get(
            "/apis/discovery.k8s.io/v1beta1/endpointslices?allowWatchBookmarks=true&labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name&resourceVersion=680552&timeout=6m9s&timeoutSeconds=369&watch=true",
        );
        assert_eq!(r.verb, Verb::Watch);
        let t = r.target.clone().unwrap();
        assert_eq!(t.group, "discovery.k8s.io");
        assert_eq!(t.version, "v1beta1");
        assert_eq!(t.resource, "endpointslices");
        assert_eq!(t.namespace, None);
        assert!(r.options.allow_watch_bookmarks);
        assert_eq!(
            r.options.label_selector.as_deref(),
            Some("!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name")
        );
        assert_eq!(r.options.timeout_seconds, Some(369));
        assert_eq!(r.selected_name(), None);
    }

    #[test]
    fn a_sharded_watch_names_its_shard_range() {
        let r = get(
            "/api/v1/pods?shardSelector=shardRange%28object.metadata.uid%2C%270x0%27%2C%270x8000000000000000%27%29&watch=true",
        );
        assert_eq!(r.verb, Verb::Watch);
        let selector = r.options.shard_selector.as_deref().unwrap();
        assert_eq!(
            selector,
            "shardRange(object.metadata.uid,'0x0','0x8000000000000000')"
        );
        assert_eq!(
            ShardRange::parse(selector),
            Some(ShardRange {
                field: "object.metadata.uid".into(),
                start: "0x0".into(),
                end: "0x8000000000000000".into(),
            })
        );
        assert_eq!(ShardRange::parse("hash(uid)"), None);
        assert_eq!(ShardRange::parse("shardRange(a,'1')"), None);
    }

    #[test]
    fn api_concepts_example() {
        let r = get("/api/v1/namespaces/test/pods?watch=1&resourceVersion=10245");
        assert_eq!(r.verb, Verb::Watch);
        assert_eq!(
            r.options.resource_version,
            ResourceVersion::Exact("10245".into())
        );
    }

    #[test]
    fn reflector_watch_list() {
        let r = get(
            "/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=",
        );
        assert!(r.is_watch_list());
        assert_eq!(
            r.options.resource_version_match.as_deref(),
            Some("NotOlderThan")
        );
        assert_eq!(r.options.resource_version, ResourceVersion::Absent);
    }

    #[test]
    fn watch_values_follow_convert_slice_string_to_bool() {
        for (q, watch) in [
            ("watch=true", true),
            ("watch=1", true),
            ("watch=", true),
            ("watch", true),
            ("watch=TRUE", true),
            ("watch=0", false),
            ("watch=false", false),
            ("watch=False", false),
            // Only the first value counts.
            ("watch=false&watch=true", false),
            ("watch=true&watch=0", true),
            ("", false),
        ] {
            let r = get(&format!("/api/v1/pods?{q}"));
            let want = if watch { Verb::Watch } else { Verb::List };
            assert_eq!(r.verb, want, "{q}");
        }
    }

    #[test]
    fn legacy_watch_paths() {
        let r = get("/api/v1/watch/pods");
        assert_eq!(r.verb, Verb::Watch);
        assert!(r.legacy_watch_path);
        assert_eq!(r.target.as_ref().unwrap().resource, "pods");

        let r = get("/api/v1/watch/namespaces/kube-system/pods");
        assert_eq!(r.verb, Verb::Watch);
        let t = r.target.unwrap();
        assert_eq!(t.namespace.as_deref(), Some("kube-system"));
        assert_eq!(t.resource, "pods");
        assert_eq!(t.name, None);

        let r = get("/api/v1/watch/namespaces/kube-system/pods/etcd-0");
        assert_eq!(r.verb, Verb::Watch);
        let t = r.target.unwrap();
        assert_eq!(t.name.as_deref(), Some("etcd-0"));

        let r = get("/apis/apps/v1/watch/namespaces/default/deployments/web");
        assert_eq!(r.verb, Verb::Watch);
        let t = r.target.unwrap();
        assert_eq!(t.group, "apps");
        assert_eq!(t.resource, "deployments");
        assert_eq!(t.name.as_deref(), Some("web"));

        // Legacy watch of the namespace list itself.
        let r = get("/api/v1/watch/namespaces");
        assert_eq!(r.verb, Verb::Watch);
        assert_eq!(r.target.unwrap().resource, "namespaces");
    }

    #[test]
    fn list_get_and_other_verbs() {
        assert_eq!(get("/api/v1/pods").verb, Verb::List);
        assert_eq!(get("/api/v1/namespaces/a/pods?limit=500").verb, Verb::List);
        let r = get("/api/v1/namespaces/a/pods?limit=500&continue=abc");
        assert_eq!(r.options.limit, Some(500));
        assert!(r.options.has_continue);
        assert_eq!(get("/api/v1/namespaces/a/pods/p").verb, Verb::Get);
        // `watch` on a named object does not make a watch: the server
        // uses its get handler.
        assert_eq!(
            get("/api/v1/namespaces/a/pods/p?watch=true").verb,
            Verb::Get
        );
        let no_headers: [(&str, &str); 0] = [];
        let p = |m: &str, path: &str| ApiRequest::parse(m, path, no_headers).verb;
        assert_eq!(p("POST", "/api/v1/namespaces/a/pods"), Verb::Create);
        assert_eq!(p("PUT", "/api/v1/namespaces/a/pods/p"), Verb::Update);
        assert_eq!(p("PATCH", "/api/v1/namespaces/a/pods/p"), Verb::Patch);
        assert_eq!(p("DELETE", "/api/v1/namespaces/a/pods/p"), Verb::Delete);
        assert_eq!(
            p("DELETE", "/api/v1/namespaces/a/pods"),
            Verb::DeleteCollection
        );
        assert_eq!(p("HEAD", "/api/v1/namespaces/a/pods/p"), Verb::Get);
        assert_eq!(p("OPTIONS", "/api/v1/pods"), Verb::Other("OPTIONS".into()));
    }

    #[test]
    fn namespaces_and_subresources() {
        let r = get("/api/v1/namespaces/kube-system");
        assert_eq!(r.verb, Verb::Get);
        let t = r.target.unwrap();
        assert_eq!(t.resource, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        assert_eq!(t.namespace.as_deref(), Some("kube-system"));

        let t = get("/api/v1/namespaces/ns1/status").target.unwrap();
        assert_eq!(t.resource, "namespaces");
        assert_eq!(t.name.as_deref(), Some("ns1"));
        assert_eq!(t.subresource.as_deref(), Some("status"));

        let t = get("/api/v1/namespaces/ns1/pods/p1/log").target.unwrap();
        assert_eq!(t.resource, "pods");
        assert_eq!(t.name.as_deref(), Some("p1"));
        assert_eq!(t.subresource.as_deref(), Some("log"));

        let t = get("/apis/apps/v1/namespaces/ns1/deployments/d/scale")
            .target
            .unwrap();
        assert_eq!(t.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn non_resource_urls() {
        for p in [
            "/healthz",
            "/version",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/openapi/v3",
            "/",
        ] {
            let r = get(p);
            assert_eq!(r.target, None, "{p}");
            assert_eq!(r.verb, Verb::Get, "{p}");
        }
    }

    #[test]
    fn headers_and_protobuf() {
        let r = ApiRequest::parse(
            "GET",
            "/api/v1/pods?watch=true",
            [
                (
                    "accept",
                    "application/vnd.kubernetes.protobuf, application/json",
                ),
                ("CONTENT-TYPE", "application/json"),
                ("authorization", "Bearer secret"),
            ],
        );
        assert!(r.accepts_protobuf());
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.user_agent, None);
        // The bearer token is not kept anywhere.
        assert!(!format!("{r:?}").contains("secret"));
    }

    #[test]
    fn percent_encoded_path_segments() {
        let r = get("/api/v1/namespaces/a/serviceaccounts/system%3Anode?x=1");
        assert_eq!(r.target.unwrap().name.as_deref(), Some("system:node"));
    }

    #[test]
    fn selected_name_needs_an_exact_match() {
        let r = get("/api/v1/pods?watch=1&fieldSelector=metadata.name%21%3Dx");
        assert_eq!(r.selected_name(), None);
        let r = get("/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dn1");
        assert_eq!(r.selected_name(), None);
        let r = get("/api/v1/pods?watch=1&fieldSelector=metadata.name%3D%3Dx");
        assert_eq!(r.selected_name(), Some("x"));
        let r = get("/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dn1%2Cmetadata.name%3Dy");
        assert_eq!(r.selected_name(), Some("y"));
    }
}
