//! The files kubelet writes for a pod's name resolution: `/etc/hosts`, `/etc/resolv.conf`,
//! and the pod's hostname.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

/// kubelet's default `options` for cluster DNS.
const CLUSTER_FIRST_OPTIONS: [&str; 1] = ["ndots:5"];
/// glibc reads at most three nameservers.
const MAX_NAMESERVERS: usize = 3;
/// Kubernetes' limit on search domains.
const MAX_SEARCHES: usize = 32;

/// The pod's hostname and, when `spec.subdomain` is set, its domain
/// (`<subdomain>.<namespace>.svc.<cluster domain>`).
///
/// The hostname is `spec.hostname`, else the pod name cut to 63 characters with trailing
/// `-`/`.` removed (a pod name may be longer than a hostname).
pub fn pod_hostname(pod: &Pod, cluster_domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let hostname = match spec.and_then(|s| s.hostname.as_deref()).filter(|h| !h.is_empty()) {
        Some(h) => h.to_string(),
        None => {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let cut: String = name.chars().take(63).collect();
            cut.trim_end_matches(['-', '.']).to_string()
        }
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let domain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|d| !d.is_empty())
        .map(|sub| format!("{sub}.{namespace}.svc.{cluster_domain}"));
    (hostname, domain)
}

/// kubelet's managed `/etc/hosts` for a pod with its own network namespace.
pub fn etc_hosts(pod: &Pod, pod_ips: &[IpAddr], cluster_domain: &str) -> String {
    let (hostname, domain) = pod_hostname(pod, cluster_domain);
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        match &domain {
            Some(d) => out.push_str(&format!("{ip}\t{hostname}.{d}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    out.push_str(&host_aliases(pod));
    out
}

/// `/etc/hosts` of a hostNetwork pod: the node's file plus the pod's hostAliases.
pub fn etc_hosts_host_network(pod: &Pod, node_hosts: &str) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file (host network).\n");
    out.push_str(node_hosts);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&host_aliases(pod));
    out
}

fn host_aliases(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_ref())
        .filter(|a| !a.is_empty());
    let Some(aliases) = aliases else { return String::new() };
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{}\n", alias.ip, names));
    }
    out
}

/// Parsed resolv.conf content.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct DnsConfig {
    servers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

/// The pod's `/etc/resolv.conf` (kubelet's DNS configurer, containerd's rendering).
///
/// - `ClusterFirst` (the default) and `ClusterFirstWithHostNet`: the cluster DNS servers,
///   searches `<ns>.svc.<domain> svc.<domain> <domain>` plus the node's, `options ndots:5`;
///   a hostNetwork pod with `ClusterFirst`, or no cluster DNS configured, gets `Default`.
/// - `Default`: the node's resolv.conf (`host_resolv_conf`).
/// - `None`: only what `dnsConfig` gives.
///
/// `dnsConfig` is then merged: nameservers and searches appended without duplicates, options
/// merged by name with the pod's value winning.
pub fn resolv_conf(pod: &Pod, cluster_dns: &[IpAddr], cluster_domain: &str, host_resolv_conf: &str) -> String {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network) == Some(true);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let host = parse_resolv_conf(host_resolv_conf);
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut config = if policy == "None" {
        DnsConfig::default()
    } else if cluster_first && !cluster_dns.is_empty() {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut searches = if cluster_domain.is_empty() {
            Vec::new()
        } else {
            vec![
                format!("{namespace}.svc.{cluster_domain}"),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_string(),
            ]
        };
        searches.extend(host.searches);
        DnsConfig {
            servers: cluster_dns.iter().map(|ip| ip.to_string()).collect(),
            searches: dedup(searches),
            options: CLUSTER_FIRST_OPTIONS.iter().map(|s| s.to_string()).collect(),
        }
    } else {
        host
    };
    if let Some(pod_config) = spec.and_then(|s| s.dns_config.as_ref()) {
        config.servers.extend(pod_config.nameservers.iter().flatten().cloned());
        config.servers = dedup(std::mem::take(&mut config.servers));
        config.searches.extend(pod_config.searches.iter().flatten().cloned());
        config.searches = dedup(std::mem::take(&mut config.searches));
        for opt in pod_config.options.iter().flatten() {
            let Some(name) = opt.name.as_deref() else { continue };
            let rendered = match opt.value.as_deref() {
                Some(v) if !v.is_empty() => format!("{name}:{v}"),
                _ => name.to_string(),
            };
            match config.options.iter().position(|o| option_name(o) == name) {
                Some(i) => config.options[i] = rendered,
                None => config.options.push(rendered),
            }
        }
    }
    config.servers.truncate(MAX_NAMESERVERS);
    config.searches.truncate(MAX_SEARCHES);
    render(&config)
}

fn option_name(opt: &str) -> &str {
    opt.split_once(':').map(|(n, _)| n).unwrap_or(opt)
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// kubelet's resolv.conf parser: comments dropped, the last `search` wins, `.` ignored.
/// The `nameserver` entries of a resolv.conf, in order (comments stripped).
pub fn resolv_conf_nameservers(content: &str) -> Vec<String> {
    parse_resolv_conf(content).servers
}

fn parse_resolv_conf(content: &str) -> DnsConfig {
    let mut config = DnsConfig::default();
    for line in content.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => config.servers.extend(fields.next().map(str::to_string)),
            Some("search") => {
                config.searches = fields
                    .filter(|s| *s != ".")
                    .map(|s| s.trim_end_matches('.').to_string())
                    .collect();
            }
            Some("options") => {
                for opt in fields {
                    match config.options.iter().position(|o| option_name(o) == option_name(opt)) {
                        Some(i) => config.options[i] = opt.to_string(),
                        None => config.options.push(opt.to_string()),
                    }
                }
            }
            _ => {}
        }
    }
    config
}

fn render(config: &DnsConfig) -> String {
    let mut out = String::new();
    if !config.searches.is_empty() {
        out.push_str(&format!("search {}\n", config.searches.join(" ")));
    }
    for server in &config.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !config.options.is_empty() {
        out.push_str(&format!("options {}\n", config.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOST: &str =
        "# host file\nnameserver 192.168.1.1\nnameserver 192.168.1.2 # second\nsearch lan. corp\noptions edns0\n";

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([]);
        serde_json::from_value(json!({"metadata": {"name": "web-0", "namespace": "prod"}, "spec": spec})).unwrap()
    }

    fn dns() -> Vec<IpAddr> {
        vec!["10.96.0.10".parse().unwrap()]
    }

    #[test]
    fn cluster_first() {
        let got = resolv_conf(&pod(json!({})), &dns(), "cluster.local", HOST);
        assert_eq!(
            got,
            "search prod.svc.cluster.local svc.cluster.local cluster.local lan corp\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn host_network_and_default_use_node_file() {
        let want = "search lan corp\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions edns0\n";
        assert_eq!(
            resolv_conf(&pod(json!({"hostNetwork": true})), &dns(), "cluster.local", HOST),
            want
        );
        assert_eq!(
            resolv_conf(&pod(json!({"dnsPolicy": "Default"})), &dns(), "cluster.local", HOST),
            want
        );
        assert_eq!(
            resolv_conf(&pod(json!({})), &[], "cluster.local", HOST),
            want,
            "no cluster DNS"
        );
        let with_host_net = pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(resolv_conf(&with_host_net, &dns(), "cluster.local", HOST).contains("nameserver 10.96.0.10\n"));
    }

    #[test]
    fn none_with_dns_config_and_merge() {
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}));
        assert_eq!(
            resolv_conf(&p, &dns(), "cluster.local", HOST),
            "search a.example\nnameserver 1.1.1.1\noptions ndots:2 rotate\n"
        );
        let merged = pod(
            json!({"dnsConfig": {"nameservers": ["10.96.0.10", "8.8.8.8"], "options": [{"name": "ndots", "value": "1"}]}}),
        );
        let got = resolv_conf(&merged, &dns(), "cluster.local", "");
        assert_eq!(
            got,
            "search prod.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver 8.8.8.8\noptions ndots:1\n"
        );
    }

    #[test]
    fn hosts_file() {
        let p = pod(json!({"hostname": "db", "subdomain": "dbs",
            "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["foo", "bar"]}]}));
        let got = etc_hosts(&p, &["10.244.0.5".parse().unwrap()], "cluster.local");
        assert!(got.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(got.contains("10.244.0.5\tdb.dbs.prod.svc.cluster.local\tdb\n"), "{got}");
        assert!(
            got.ends_with("\n# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"),
            "{got}"
        );
        let plain = etc_hosts(&pod(json!({})), &["10.244.0.6".parse().unwrap()], "cluster.local");
        assert!(
            plain.ends_with("fe00::2\tip6-allrouters\n10.244.0.6\tweb-0\n"),
            "{plain}"
        );
    }

    #[test]
    fn long_pod_name_hostname() {
        let mut p = pod(json!({}));
        p.metadata.name = Some(format!("{}-x", "a".repeat(62)));
        assert_eq!(pod_hostname(&p, "cluster.local").0, "a".repeat(62));
    }
}
