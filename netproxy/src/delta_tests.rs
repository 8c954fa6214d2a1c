//! `Desired::delta_script`: what it sends, and that a table updated by deltas is the table a
//! full write of the new model gives (checked against a real kernel in private namespaces).

use super::*;
use std::process::Command;

/// `feature_model` changed in every way a sync meets: a service gone, one gained (with
/// affinity: a new set), endpoints replaced, a node port moved, one service left without
/// endpoints and another given them.
fn changed(m: &Model) -> Model {
    let mut m = m.clone();
    m.delete_service("default", "solo");
    m.delete_slice("default", "solo-x");
    let web = m.services[&("default".to_string(), "web".to_string())].clone();
    m.upsert_slice(slice_for(&web, 8080, &[("10.244.1.5", "n1"), ("10.244.2.6", "n2")]));
    let mut np = m.services[&("default".to_string(), "np-local".to_string())].clone();
    np.ports[0].node_port = Some(30090);
    m.upsert_service(np);
    m.delete_slice("default", "local-x");
    let empty = m.services[&("default".to_string(), "empty".to_string())].clone();
    m.upsert_slice(slice_for(&empty, 9090, &[("10.244.2.7", "n2")]));
    let mut sticky = svc("apps", "sticky", "10.96.5.5", vec![port("", Protocol::Tcp, 443, None)]);
    sticky.affinity_timeout = Some(60);
    m.upsert_slice(slice_for(&sticky, 8443, &[("10.244.1.8", "n1"), ("10.244.2.8", "n2")]));
    m.upsert_service(sticky);
    m
}

#[test]
fn an_unchanged_model_needs_no_commands() {
    let d = Desired::of(&feature_model());
    assert_eq!(d.delta_script(&d.clone()).as_deref(), Some(""));
}

#[test]
fn one_endpoint_change_touches_only_that_service() {
    let (mut m, web) = web_model();
    let before = Desired::of(&m);
    m.upsert_slice(slice_for(&web, 8080, &[("10.244.1.5", "n1"), ("10.244.2.5", "n2")]));
    let delta = Desired::of(&m).delta_script(&before).expect("a delta");
    assert!(!delta.contains("delete table"), "{delta}");
    assert!(delta.contains("flush chain ip skiff svc-"), "{delta}");
    assert!(delta.contains("delete chain ip skiff ep-"), "{delta}");
    assert!(delta.contains("numgen random mod 2"), "{delta}");
    // The map element keeps pointing at the same (refilled) chain.
    assert!(!delta.contains("element"), "{delta}");
}

#[test]
fn configuration_changes_and_affinity_timeouts_need_a_full_write() {
    let m = feature_model();
    let before = Desired::of(&m);
    let mut other = m.clone();
    other.service_cidr = Some((ip("10.96.0.0"), 16));
    assert!(Desired::of(&other).delta_script(&before).is_none());
    let mut web = m.services[&("default".to_string(), "web".to_string())].clone();
    web.affinity_timeout = Some(5);
    let mut other = m.clone();
    other.upsert_service(web);
    assert!(Desired::of(&other).delta_script(&before).is_none());
}

/// The listing, as a sorted multiset of its tokens: chain order and element order in the
/// kernel's listing depend on history, the content must not.
fn tokens(listing: &str) -> Vec<String> {
    let mut t: Vec<String> = listing
        .split(['\n', ',', '{', '}'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    t.sort();
    t
}

fn list_after(scripts: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut shell = String::from("set -e\n");
    for (i, s) in scripts.iter().enumerate() {
        let path = dir.path().join(format!("{i}.nft"));
        std::fs::write(&path, s).expect("write script");
        shell.push_str(&format!("nft -f {}\n", path.display()));
    }
    shell.push_str("nft list table ip skiff\n");
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &shell])
        .output()
        .expect("unshare (these tests need root and nftables)");
    assert!(
        out.status.success(),
        "{}\nscripts:\n{}",
        String::from_utf8_lossy(&out.stderr),
        scripts.join("\n----\n")
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deltas_reach_the_table_a_full_write_gives() {
    let a = feature_model();
    let b = changed(&a);
    let (da, db) = (Desired::of(&a), Desired::of(&b));
    let forward = db.delta_script(&da).expect("a delta");
    let back = da.delta_script(&db).expect("a delta back");
    let via_delta = list_after(&[&da.full_script(), &forward]);
    let direct = list_after(&[&db.full_script()]);
    assert_eq!(tokens(&via_delta), tokens(&direct), "delta:\n{forward}");
    // And back again, which deletes what the first delta added.
    let round_trip = list_after(&[&da.full_script(), &forward, &back]);
    assert_eq!(
        tokens(&round_trip),
        tokens(&list_after(&[&da.full_script()])),
        "delta back:\n{back}"
    );
}
