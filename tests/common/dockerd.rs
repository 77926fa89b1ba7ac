//! A private Docker daemon for tests: started from Debian's docker.io as
//! root in a temp dir, never touching the user's daemon, stopped by its pid
//! and unmounted at the end.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{is_root, skip, tool};

pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub host: String,
    /// `tcp://127.0.0.1:PORT` when started with [`Dockerd::start_tcp`].
    pub tcp: Option<String>,
    child: Child,
}

impl Dockerd {
    /// Starts a daemon, or reports a skip of `test` (see [`skip`]) and
    /// returns None when dockerd is missing or we are not root.
    pub fn start(test: &str) -> Option<Dockerd> {
        Self::launch(test, None)
    }

    /// Like [`Dockerd::start`], also listening on a loopback TCP port.
    pub fn start_tcp(test: &str, port: u16) -> Option<Dockerd> {
        Self::launch(test, Some(port))
    }

    fn launch(test: &str, port: Option<u16>) -> Option<Dockerd> {
        let Some(dockerd) = tool("dockerd") else {
            skip(test, "dockerd not installed (apt-get install docker.io)");
            return None;
        };
        if !is_root() {
            skip(test, "the private Docker daemon needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("ferry-dockerd")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let sock = d.join("docker.sock");
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let tcp = port.map(|p| format!("tcp://127.0.0.1:{p}"));
        let mut cmd = Command::new(dockerd);
        if let Some(t) = &tcp {
            cmd.arg("-H").arg(t);
        }
        let child = cmd
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let daemon = Dockerd {
            host: format!("unix://{}", sock.display()),
            tcp,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if sock.exists()
                && daemon
                    .docker()
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            {
                return Some(daemon);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(daemon.dir.path().join("dockerd.log"))
                    .unwrap_or_default();
                panic!("dockerd did not come up within 60 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A `docker` CLI command against this daemon (for building test images
    /// and for checking what ferry did; ferry itself uses the API).
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H").arg(&self.host).env("DOCKER_BUILDKIT", "0");
        c
    }

    /// Runs a docker command, asserting success; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.docker().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `docker import` of a tar built from `files` as `tag`.
    pub fn import(&self, tag: &str, files: &[(&str, Vec<u8>)]) {
        let ctx = self
            .dir
            .path()
            .join(format!("rootfs-{}", tag.replace([':', '/'], "_")));
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_mtime(1_600_000_000);
            b.append_data(&mut h, path, data.as_slice()).unwrap();
        }
        std::fs::write(&ctx, b.into_inner().unwrap()).unwrap();
        self.run(&["import", ctx.to_str().unwrap(), tag]);
    }

    /// `docker build` of `FROM base`, one COPY per file, and ENV lines.
    pub fn build(&self, tag: &str, base: &str, files: &[(&str, Vec<u8>)], env: &[&str]) -> String {
        let ctx = self
            .dir
            .path()
            .join(format!("ctx-{}", tag.replace([':', '/'], "_")));
        std::fs::create_dir_all(&ctx).unwrap();
        let mut dockerfile = format!("FROM {base}\n");
        for (i, (path, data)) in files.iter().enumerate() {
            std::fs::write(ctx.join(format!("f{i}")), data).unwrap();
            dockerfile.push_str(&format!("COPY f{i} {path}\n"));
        }
        for e in env {
            dockerfile.push_str(&format!("ENV {e}\n"));
        }
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        self.run(&["build", "-q", "-t", tag, ctx.to_str().unwrap()])
    }

    /// `docker inspect` of an image as JSON.
    pub fn inspect(&self, reference: &str) -> serde_json::Value {
        let out = self.run(&["image", "inspect", reference]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // dockerd bind-mounts under its roots; unmount before removing them.
        let root = self.dir.path().to_string_lossy().into_owned();
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(4))
                .filter(|p| p.starts_with(&root))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}
