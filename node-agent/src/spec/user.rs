//! The uid, gid and supplementary groups a container runs with.
//!
//! Precedence (containerd's, fed by kubelet): `runAsUser` (container securityContext, else
//! the pod's), else the image's `User` (`uid`, `uid:gid`, `name`, `name:group`), else root.
//! A gid not given comes from the user's passwd entry, else 0; `runAsGroup` overrides it.
//! Supplementary groups: the user's memberships in the image's /etc/group, then the pod's
//! `supplementalGroups` and `fsGroup`.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::SpecError;

/// The image's /etc/passwd and /etc/group, as far as they exist.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    pub passwd: Option<String>,
    pub group: Option<String>,
}

impl UserDb {
    /// Read `rootfs/etc/passwd` and `rootfs/etc/group`. A symlink is ignored rather than
    /// followed: it would resolve against the host's root, not the image's.
    pub fn load(rootfs: &Path) -> Result<Self, SpecError> {
        Ok(UserDb {
            passwd: read_plain(&rootfs.join("etc/passwd"))?,
            group: read_plain(&rootfs.join("etc/group"))?,
        })
    }

    fn passwd_entries(&self) -> impl Iterator<Item = PasswdEntry<'_>> {
        self.passwd
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter_map(PasswdEntry::parse)
    }

    fn group_entries(&self) -> impl Iterator<Item = GroupEntry<'_>> {
        self.group
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter_map(GroupEntry::parse)
    }
}

fn read_plain(path: &Path) -> Result<Option<String>, SpecError> {
    let err = |source| SpecError::ReadUserDb {
        path: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => std::fs::read_to_string(path).map(Some).map_err(err),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e)),
    }
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

impl<'a> PasswdEntry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        Some(PasswdEntry {
            name,
            uid: f.next()?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
        })
    }
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

impl<'a> GroupEntry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = f.next()?.parse().ok()?;
        Some(GroupEntry {
            name,
            gid,
            members: f.next().unwrap_or_default(),
        })
    }
}

/// Numeric credentials for the OCI `process.user`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Resolve the credentials of `container` in `pod` with the image user `image_user`.
pub fn resolve_user(
    pod: &Pod,
    container: &Container,
    image_user: Option<&str>,
    db: &UserDb,
) -> Result<ResolvedUser, SpecError> {
    let sc = container.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = sc.and_then(|s| s.run_as_user).or(psc.and_then(|s| s.run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or(psc.and_then(|s| s.run_as_group));
    let run_as_non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root));

    let (uid, explicit_gid, username) = match (run_as_user, image_user.filter(|u| !u.is_empty())) {
        (Some(uid), _) => {
            let uid = to_id("runAsUser", uid)?;
            (
                uid,
                None,
                db.passwd_entries().find(|e| e.uid == uid).map(|e| e.name.to_string()),
            )
        }
        (None, Some(spec)) => image_user_ids(spec, db)?,
        (None, None) => (
            0,
            None,
            db.passwd_entries().find(|e| e.uid == 0).map(|e| e.name.to_string()),
        ),
    };
    let primary = || db.passwd_entries().find(|e| e.uid == uid).map(|e| e.gid).unwrap_or(0);
    let gid = match run_as_group {
        Some(g) => to_id("runAsGroup", g)?,
        None => explicit_gid.unwrap_or_else(primary),
    };

    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(name) = &username {
        let member_of = db
            .group_entries()
            .filter(|g| g.members.split(',').any(|m| m == name))
            .map(|g| g.gid);
        additional_gids.extend(member_of);
    }
    for g in psc.and_then(|s| s.supplemental_groups.as_ref()).into_iter().flatten() {
        additional_gids.push(to_id("supplementalGroups", *g)?);
    }
    if let Some(fs_group) = psc.and_then(|s| s.fs_group) {
        additional_gids.push(to_id("fsGroup", fs_group)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    additional_gids.retain(|g| seen.insert(*g));

    if run_as_non_root == Some(true) && uid == 0 {
        return Err(SpecError::RunAsRoot {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: container.name.clone(),
        });
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// `uid`, `uid:gid`, `name`, `name:group` -> (uid, gid if given, user name if known).
fn image_user_ids(spec: &str, db: &UserDb) -> Result<(u32, Option<u32>, Option<String>), SpecError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, name) = match user.parse::<u32>() {
        Ok(uid) => (
            uid,
            db.passwd_entries().find(|e| e.uid == uid).map(|e| e.name.to_string()),
        ),
        Err(_) => {
            let entry = db.passwd_entries().find(|e| e.name == user);
            let entry = entry.ok_or_else(|| SpecError::UnknownUser { user: user.to_string() })?;
            (entry.uid, Some(entry.name.to_string()))
        }
    };
    let gid = match group {
        None | Some("") => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let entry = db.group_entries().find(|e| e.name == g);
                entry
                    .ok_or_else(|| SpecError::UnknownGroup { group: g.to_string() })?
                    .gid
            }
        }),
    };
    Ok((uid, gid, name))
}

fn to_id(what: &'static str, value: i64) -> Result<u32, SpecError> {
    u32::try_from(value).map_err(|_| SpecError::IdOutOfRange { what, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> UserDb {
        UserDb {
            passwd: Some("root:x:0:0:root:/root:/bin/sh\nnginx:x:101:102::/:/sbin/nologin\n".into()),
            group: Some("root:x:0:\nnginx:x:102:\nwww:x:33:nginx,other\n".into()),
        }
    }

    fn pod(psc: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [], "securityContext": psc}}))
            .unwrap()
    }

    fn ctr(sc: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "c", "securityContext": sc})).unwrap()
    }

    fn ids(p: &Pod, c: &Container, image: Option<&str>) -> (u32, u32, Vec<u32>) {
        let u = resolve_user(p, c, image, &db()).unwrap();
        (u.uid, u.gid, u.additional_gids)
    }

    #[test]
    fn defaults_to_root() {
        assert_eq!(ids(&pod(json!({})), &ctr(json!({})), None), (0, 0, vec![]));
        let no_db = resolve_user(&pod(json!({})), &ctr(json!({})), None, &UserDb::default()).unwrap();
        assert_eq!((no_db.uid, no_db.gid), (0, 0));
    }

    #[test]
    fn image_user_forms() {
        let (p, c) = (pod(json!({})), ctr(json!({})));
        assert_eq!(ids(&p, &c, Some("1000")), (1000, 0, vec![]));
        assert_eq!(ids(&p, &c, Some("1000:2000")), (1000, 2000, vec![]));
        assert_eq!(ids(&p, &c, Some("nginx")), (101, 102, vec![33]));
        assert_eq!(ids(&p, &c, Some("nginx:www")), (101, 33, vec![33]));
        assert_eq!(
            ids(&p, &c, Some("101")),
            (101, 102, vec![33]),
            "numeric uid still finds its passwd gid"
        );
        let err = resolve_user(&p, &c, Some("nobody"), &db()).unwrap_err();
        assert!(
            matches!(err, SpecError::UnknownUser { ref user } if user == "nobody"),
            "{err}"
        );
        assert!(
            resolve_user(&p, &c, Some("nginx"), &UserDb::default()).is_err(),
            "name without passwd"
        );
    }

    #[test]
    fn security_context_precedence() {
        let p = pod(json!({"runAsUser": 1, "runAsGroup": 2, "supplementalGroups": [5, 6], "fsGroup": 7}));
        assert_eq!(ids(&p, &ctr(json!({})), Some("nginx")), (1, 2, vec![5, 6, 7]));
        assert_eq!(ids(&p, &ctr(json!({"runAsUser": 10})), None), (10, 2, vec![5, 6, 7]));
        assert_eq!(
            ids(&p, &ctr(json!({"runAsUser": 10, "runAsGroup": 20})), None),
            (10, 20, vec![5, 6, 7])
        );
        let p2 = pod(json!({}));
        assert_eq!(
            ids(&p2, &ctr(json!({"runAsUser": 101})), Some("0")),
            (101, 102, vec![33])
        );
    }

    #[test]
    fn run_as_non_root() {
        let p = pod(json!({"runAsNonRoot": true}));
        assert!(matches!(
            resolve_user(&p, &ctr(json!({})), None, &db()),
            Err(SpecError::RunAsRoot { .. })
        ));
        assert!(resolve_user(&p, &ctr(json!({})), Some("nginx"), &db()).is_ok());
        assert!(resolve_user(&p, &ctr(json!({"runAsUser": -1})), None, &db()).is_err());
    }
}
