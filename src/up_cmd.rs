//! `skiff up`: a whole local cluster on this machine, 3 masters and 2 agents, each "host" in
//! its own network namespace on a bridge made for it; `skiff down` (`down_cmd.rs`) removes it.
//!
//! Layout (cluster name `skiff`, subnet 10.77.0.0/24, state under `--dir`):
//! ```text
//! host:  bridge skiff-br 10.77.0.1/24 (no other port: never joined to a real interface),
//!        blackhole routes for the pod and service CIDRs (nothing for them leaves the machine)
//! skiff-m1..m3  masters at 10.77.0.11..13 (store 2379/2380, metrics 2381, API 6443)
//! skiff-n1..n2  agents at 10.77.0.21..22 (pod CIDRs routed between them, netproxy, DNS)
//! DIR/state.json     what was made, written before each step so `down` undoes a failed `up`
//! DIR/admin.kubeconfig, DIR/<host>.log, DIR/<host>/ (data dirs), DIR/sample-image/
//! ```
//! No namespace has a default route. Masters and agents run detached (own process group,
//! output to their log files) and outlive `skiff up`; the agents' mounts stay in the host's
//! mount namespace (only the network namespace is entered, with `nsenter --net`), as in
//! production, so `down` finds them.

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

/// Flags of `skiff up`.
#[derive(Args)]
pub struct UpArgs {
    /// Where the cluster's state, data and logs live.
    #[arg(long, default_value = "/var/lib/skiff-up")]
    pub dir: PathBuf,
    /// A /24 for the hosts' addresses (.1 the bridge, .11.. the masters, .21.. the agents);
    /// must not overlap a network this machine uses.
    #[arg(long, default_value = "10.77.0.0/24")]
    pub subnet: String,
    /// Prefix of the namespaces and interfaces made (1-8 of a-z, 0-9).
    #[arg(long, default_value = "skiff")]
    pub name: String,
    #[arg(long, default_value_t = 3)]
    pub masters: u8,
    #[arg(long, default_value_t = 2)]
    pub agents: u8,
    /// Give up (and remove what was made) when the cluster is not Ready after this many seconds.
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// The masters' Raft heartbeat, ms. The hosts share one machine: short timers make a
    /// killed leader's successor serve within about 1.5 s (openraft waits a leader lease, the
    /// longest election timeout, plus a random election timeout before it elects).
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// The masters' shortest election timeout, ms (the longest is twice it).
    #[arg(long, default_value_t = 400)]
    pub election_timeout_ms: u64,
    /// Extra flags for every agent (e.g. `--node-monitor...`), as one string split on spaces.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub agent_args: String,
    /// Extra flags for every master, as one string split on spaces.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub master_args: String,
}

pub const POD_CIDR: &str = "10.244.0.0/16";
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

/// One "host": a network namespace, its address and the process running in it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Host {
    pub name: String,
    pub netns: String,
    pub addr: Ipv4Addr,
    pub master: bool,
    pub pid: Option<u32>,
    /// Set once `ip netns add` succeeded: `down` deletes only namespaces `up` made.
    #[serde(default)]
    pub netns_made: bool,
}

/// What `up` made, for `down`.
#[derive(Serialize, Deserialize, Default, Debug)]
pub struct UpState {
    pub name: String,
    pub bridge: String,
    /// Set once the bridge exists (`down` deletes it only then).
    pub bridge_addr: Option<Ipv4Addr>,
    /// The host's nftables table that keeps the hosts from opening connections to this machine.
    #[serde(default)]
    pub host_table: Option<String>,
    pub hosts: Vec<Host>,
    /// Host routes `up` added (and only those are removed).
    pub routes: Vec<String>,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

impl UpState {
    pub fn load(dir: &Path) -> Result<UpState> {
        let p = state_path(dir);
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
    }

    /// The first save: fails when another `skiff up` got there first.
    fn create(&self, dir: &Path) -> Result<()> {
        let p = state_path(dir);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .with_context(|| format!("creating {} (is another skiff up running on it?)", p.display()))?;
        self.save(dir)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let p = state_path(dir);
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))
    }
}

/// Run a command, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command found on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Parse `a.b.c.0/24` into its network address.
fn parse_subnet(s: &str) -> Result<Ipv4Addr> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("--subnet {s:?}: expected a.b.c.0/24"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| anyhow!("--subnet {s:?}: {ip:?} is not an IPv4 address"))?;
    if len != "24" || ip.octets()[3] != 0 {
        bail!("--subnet {s:?}: expected a /24 ending in .0, e.g. 10.77.0.0/24");
    }
    Ok(ip)
}

fn host_addr(net: Ipv4Addr, last: u8) -> Ipv4Addr {
    let o = net.octets();
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

/// Refuse a subnet that this machine already has an address or a route in.
fn check_free(net: Ipv4Addr, bridge: &str, hosts: &[Host]) -> Result<()> {
    if let Some(h) = hosts.iter().find(|h| Path::new("/run/netns").join(&h.netns).exists()) {
        bail!(
            "a network namespace named {} exists: is a cluster up already? (`skiff down`, or --name)",
            h.netns
        );
    }
    let prefix = format!("{}.{}.{}.", net.octets()[0], net.octets()[1], net.octets()[2]);
    let addrs = run("ip", &["-4", "-o", "addr", "show"])?;
    if let Some(l) = addrs.lines().find(|l| l.contains(&format!("inet {prefix}"))) {
        bail!(
            "the subnet {net}/24 is in use on this machine ({}); pick another with --subnet",
            l.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
        );
    }
    // Routes covering the subnet (but the default) and routes inside it, in every table.
    let mut routes = run(
        "ip",
        &["-4", "route", "show", "table", "all", "match", &format!("{net}/24")],
    )?;
    routes.push_str(&run(
        "ip",
        &["-4", "route", "show", "table", "all", "root", &format!("{net}/24")],
    )?);
    if let Some(l) = routes
        .lines()
        .find(|l| !l.starts_with("default") && !l.trim().is_empty())
    {
        bail!("the subnet {net}/24 is routed on this machine ({l}); pick another with --subnet");
    }
    if Path::new("/sys/class/net").join(bridge).exists() {
        bail!("an interface named {bridge} exists: is a cluster up already? (`skiff down`, or --name)");
    }
    Ok(())
}

/// `dir` must be absent, empty, or hold only the logs a failed `up` kept (they go): `up` and
/// `down` own everything in it, and `down` removes it.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.parent().is_none() {
        bail!("--dir {}: must not be the root directory", dir.display());
    }
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        Ok(entries) => {
            let entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            if let Some(other) = entries.iter().find(|p| p.extension().is_none_or(|x| x != "log")) {
                bail!(
                    "--dir {} is not empty ({} is there): skiff up needs a directory of its own",
                    dir.display(),
                    other.display()
                );
            }
            for p in entries {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn step<T>(label: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    eprint!("skiff up: {label} ... ");
    match f() {
        Ok(v) => {
            eprintln!("ok ({:.1} s)", t.elapsed().as_secs_f64());
            Ok(v)
        }
        Err(e) => {
            eprintln!("failed");
            Err(e)
        }
    }
}

pub async fn run_up(a: UpArgs) -> Result<()> {
    let started = Instant::now();
    if !is_root() {
        bail!("skiff up must run as root (it makes network namespaces, a bridge and cgroups)");
    }
    if a.name.is_empty() || a.name.len() > 8 || !a.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        bail!("--name {:?}: 1 to 8 characters of a-z, 0-9", a.name);
    }
    if !(1..=7).contains(&a.masters) || !(1..=9).contains(&a.agents) {
        bail!("--masters must be 1-7 and --agents 1-9");
    }
    for tool in ["ip", "nsenter", "nft"] {
        if which(tool).is_none() {
            bail!("{tool} not found (Debian: apt-get install iproute2 util-linux nftables)");
        }
    }
    let busybox = which("busybox").ok_or_else(|| {
        anyhow!("the sample image needs a statically linked busybox (apt-get install busybox-static)")
    })?;
    let net = parse_subnet(&a.subnet)?;
    if state_path(&a.dir).exists() {
        bail!(
            "a cluster is up already ({}): `skiff down --dir {}` first",
            state_path(&a.dir).display(),
            a.dir.display()
        );
    }
    let bridge = format!("{}-br", a.name);
    let mut st = UpState {
        name: a.name.clone(),
        bridge: bridge.clone(),
        ..UpState::default()
    };
    let host = |name: String, addr: u8, master: bool| Host {
        netns: format!("{}-{name}", a.name),
        name,
        addr: host_addr(net, addr),
        master,
        pid: None,
        netns_made: false,
    };
    st.hosts
        .extend((1..=a.masters).map(|i| host(format!("m{i}"), 10 + i, true)));
    st.hosts
        .extend((1..=a.agents).map(|i| host(format!("n{i}"), 20 + i, false)));
    check_free(net, &bridge, &st.hosts)?;
    prepare_dir(&a.dir)?;
    let dir = std::fs::canonicalize(&a.dir)?;
    st.create(&dir)?;

    let mut children = Vec::new();
    let res = bring_up(&a, &dir, net, &busybox, &mut st, &mut children).await;
    if let Err(e) = res {
        for (name, c) in &mut children {
            if let Ok(Some(status)) = c.try_wait() {
                eprintln!(
                    "skiff up: {name} exited ({status}); last lines of {}:",
                    dir.join(format!("{name}.log")).display()
                );
                eprintln!("{}", tail(&dir.join(format!("{name}.log")), 15));
            }
        }
        eprintln!("skiff up: {e:#}\nskiff up: removing what was made");
        match crate::down_cmd::tear_down(&dir, crate::down_cmd::Keep::Logs) {
            Ok(()) => eprintln!("skiff up: the logs are kept in {}/*.log", dir.display()),
            Err(d) => eprintln!("skiff up: cleaning up: {d:#}"),
        }
        return Err(e);
    }
    let kubeconfig = dir.join("admin.kubeconfig");
    let m1 = st.hosts[0].addr;
    eprintln!(
        "skiff up: cluster Ready in {:.1} s: {} masters, {} agents",
        started.elapsed().as_secs_f64(),
        a.masters,
        a.agents
    );
    println!(
        "\nTry:\n  export KUBECONFIG={kc}\n  kubectl get nodes -o wide\n  \
         kubectl create deployment hello --image={img} --replicas=4\n  \
         kubectl expose deployment hello --port=80 --target-port={port}\n  \
         kubectl get pods -o wide\n  \
         kubectl run client --image={img} --restart=Never --rm -it -- wget -qO- hello\n  \
         ETCDCTL_API=3 etcdctl --endpoints={m1}:2379 member list\n\
         Logs: {dir}/<host>.log. Stop and remove everything: {exe} down{dirflag}",
        exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "skiff".into()),
        kc = kubeconfig.display(),
        img = node_agent::image::sample::SAMPLE_IMAGE,
        port = node_agent::image::sample::SAMPLE_PORT,
        dir = dir.display(),
        dirflag = if a.dir == Path::new("/var/lib/skiff-up") {
            String::new()
        } else {
            format!(" --dir {}", dir.display())
        },
    );
    Ok(())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn bring_up(
    a: &UpArgs,
    dir: &Path,
    net: Ipv4Addr,
    busybox: &Path,
    st: &mut UpState,
    children: &mut Vec<(String, Child)>,
) -> Result<()> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let exe = exe
        .to_str()
        .ok_or_else(|| anyhow!("this binary's path is not UTF-8"))?
        .to_string();

    let layout = dir.join("sample-image");
    step("sample image from the host's busybox", || {
        let applets: Vec<String> = run(&busybox.display().to_string(), &["--list"])?
            .lines()
            .map(str::to_string)
            .collect();
        node_agent::image::sample::write_layout(&layout, busybox, &applets)?;
        Ok(())
    })?;

    step(
        &format!("network: bridge {} {}/24, {} hosts", st.bridge, net, st.hosts.len()),
        || {
            let gw = host_addr(net, 1);
            run("ip", &["link", "add", &st.bridge, "type", "bridge"])?;
            st.bridge_addr = Some(gw);
            st.save(dir)?;
            run("ip", &["addr", "add", &format!("{gw}/24"), "dev", &st.bridge])?;
            run("ip", &["link", "set", &st.bridge, "up"])?;
            for cidr in [POD_CIDR, SERVICE_CIDR] {
                if run("ip", &["-4", "route", "show", "exact", cidr])?.trim().is_empty() {
                    run("ip", &["route", "add", "blackhole", cidr])?;
                    st.routes.push(format!("blackhole {cidr}"));
                    st.save(dir)?;
                }
            }
            // The hosts may answer this machine (kubectl from here) but not open connections
            // to it: its own services stay out of the cluster's reach.
            let table = format!("{}-up", st.name);
            netproxy::nft::Nft::apply(
                &netproxy::nft::NftCli,
                &format!(
                    "table inet {table} {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  \
                 iifname \"{br}\" ct state established,related accept\n  iifname \"{br}\" drop\n }}\n}}\n",
                    br = st.bridge
                ),
            )?;
            st.host_table = Some(table);
            st.save(dir)?;
            for i in 0..st.hosts.len() {
                let h = st.hosts[i].clone();
                run("ip", &["netns", "add", &h.netns])?;
                st.hosts[i].netns_made = true;
                st.save(dir)?;
                run("ip", &["-n", &h.netns, "link", "set", "lo", "up"])?;
                run(
                    "ip",
                    &[
                        "link", "add", &h.netns, "type", "veth", "peer", "name", "eth0", "netns", &h.netns,
                    ],
                )?;
                run("ip", &["link", "set", &h.netns, "master", &st.bridge, "up"])?;
                run(
                    "ip",
                    &["-n", &h.netns, "addr", "add", &format!("{}/24", h.addr), "dev", "eth0"],
                )?;
                run("ip", &["-n", &h.netns, "link", "set", "eth0", "up"])?;
            }
            Ok(())
        },
    )?;

    let masters: Vec<Host> = st.hosts.iter().filter(|h| h.master).cloned().collect();
    let initial = masters
        .iter()
        .map(|m| format!("{}={}:2380", m.name, m.addr))
        .collect::<Vec<_>>()
        .join(",");
    step(&format!("{} masters", masters.len()), || {
        for m in &masters {
            let d = dir.join(&m.name);
            let mut args = vec![
                "master".to_string(),
                "--name".into(),
                m.name.clone(),
                "--data-dir".into(),
                d.display().to_string(),
                "--listen-peer".into(),
                format!("{}:2380", m.addr),
                "--listen-client".into(),
                format!("{}:2379", m.addr),
                "--listen-metrics".into(),
                format!("{}:2381", m.addr),
                "--listen-api".into(),
                format!("{}:6443", m.addr),
                "--initial-cluster".into(),
                initial.clone(),
                "--heartbeat-ms".into(),
                a.heartbeat_ms.to_string(),
                "--election-timeout-ms".into(),
                a.election_timeout_ms.to_string(),
                "--cluster-cidr".into(),
                POD_CIDR.into(),
            ];
            args.extend(a.master_args.split_whitespace().map(str::to_string));
            spawn_in(dir, m, &exe, &args, st, children)?;
        }
        Ok(())
    })?;

    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let m1 = &masters[0];
    let admin = dir.join("admin.kubeconfig");
    let servers: Vec<String> = masters.iter().map(|m| format!("https://{}:6443", m.addr)).collect();
    let (masters_r, servers_r, admin_r, m1_dir) = (&masters, &servers, &admin, dir.join(&m1.name));
    let m1_dir = &m1_dir;
    wait_step("the API on every master", deadline, children, move || async move {
        for m in masters_r {
            if !dir.join(&m.name).join("admin.kubeconfig").exists() {
                return Ok(false);
            }
        }
        let text = control_plane::kubeconfig_for(m1_dir, &servers_r[0], "admin", &["system:masters".to_string()])?;
        std::fs::write(admin_r, text)?;
        let cfg = node_agent::kube::kubeconfig::Kubeconfig::load(admin_r)?;
        for s in servers_r {
            let mut one = cfg.clone();
            one.server = s.clone();
            let c = node_agent::kube::client::KubeClient::new(&one, &[])?;
            if c.get::<serde_json::Value>("/api/v1/namespaces/default").await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;

    let agents: Vec<Host> = st.hosts.iter().filter(|h| !h.master).cloned().collect();
    let image = node_agent::image::Reference::parse(node_agent::image::sample::SAMPLE_IMAGE)?;
    let t = Instant::now();
    eprint!("skiff up: sample image into {} agents ... ", agents.len());
    for n in &agents {
        let store = node_agent::image::ImageStore::open(&dir.join(&n.name).join("images"))?;
        store.import_layout(&layout, &image).await?;
    }
    eprintln!("ok ({:.1} s)", t.elapsed().as_secs_f64());

    step(&format!("{} agents", agents.len()), || {
        for (i, n) in agents.iter().enumerate() {
            // Each agent talks to "its" master first, and fails over to the others.
            let first = &masters[i % masters.len()];
            let kc = dir.join(format!("{}.kubeconfig", n.name));
            let text = control_plane::kubeconfig_for(
                &dir.join(&m1.name),
                &format!("https://{}:6443", first.addr),
                &format!("system:node:{}", n.name),
                &["system:nodes".to_string()],
            )?;
            std::fs::write(&kc, text)?;
            let mut args = vec![
                "agent".to_string(),
                "--name".into(),
                n.name.clone(),
                "--data-dir".into(),
                dir.join(&n.name).display().to_string(),
                "--kubeconfig".into(),
                kc.display().to_string(),
                "--server".into(),
                servers.join(","),
                "--node-ip".into(),
                n.addr.to_string(),
                "--cluster-cidr".into(),
                POD_CIDR.into(),
                // No namespace has a way out: names outside the cluster get no answer.
                "--dns-upstream".into(),
                "none".into(),
            ];
            args.extend(a.agent_args.split_whitespace().map(str::to_string));
            spawn_in(dir, n, &exe, &args, st, children)?;
        }
        Ok(())
    })?;

    let cfg = node_agent::kube::kubeconfig::Kubeconfig::load(&admin)?;
    let client = node_agent::kube::client::KubeClient::new(&cfg, &servers[1..])?;
    let names: Vec<String> = agents.iter().map(|n| n.name.clone()).collect();
    let (client, names) = (&client, &names);
    wait_step("every node Ready", deadline, children, move || async move {
        let list: serde_json::Value = client.get("/api/v1/nodes").await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let ready = |name: &str| {
            items.iter().any(|n| {
                n["metadata"]["name"] == name
                    && n["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
        };
        Ok(names.iter().all(|n| ready(n)))
    })
    .await
}

/// Start `exe args` inside `h`'s network namespace, detached, output to `DIR/<host>.log`.
fn spawn_in(
    dir: &Path,
    h: &Host,
    exe: &str,
    args: &[String],
    st: &mut UpState,
    children: &mut Vec<(String, Child)>,
) -> Result<()> {
    let log_path = dir.join(format!("{}.log", h.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", h.netns))
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: Ctrl-C on the terminal that ran `skiff up` leaves it running.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", h.name))?;
    if let Some(x) = st.hosts.iter_mut().find(|x| x.name == h.name) {
        x.pid = Some(child.id());
    }
    st.save(dir)?;
    children.push((h.name.clone(), child));
    Ok(())
}

/// Poll `check` every 200 ms until it says true; fail at `deadline` or when a process exits.
async fn wait_step<F, Fut>(label: &str, deadline: Instant, children: &mut [(String, Child)], check: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let t = Instant::now();
    eprint!("skiff up: waiting for {label} ... ");
    let mut last_err = None;
    loop {
        for (name, c) in children.iter_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                eprintln!("failed");
                bail!("{name} exited ({status})");
            }
        }
        match check().await {
            Ok(true) => {
                eprintln!("ok ({:.1} s)", t.elapsed().as_secs_f64());
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            eprintln!("failed");
            return Err(match last_err {
                Some(e) => e.context(format!("timed out waiting for {label}")),
                None => anyhow!("timed out waiting for {label}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_must_be_a_slash_24() {
        assert_eq!(parse_subnet("10.77.0.0/24").ok(), Some(Ipv4Addr::new(10, 77, 0, 0)));
        for bad in ["10.77.0.0", "10.77.0.0/16", "10.77.0.5/24", "x/24"] {
            let e = parse_subnet(bad).expect_err(bad);
            assert!(e.to_string().contains("--subnet"), "{e}");
        }
        assert_eq!(host_addr(Ipv4Addr::new(10, 77, 0, 0), 11), Ipv4Addr::new(10, 77, 0, 11));
    }
}
