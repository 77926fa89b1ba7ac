//! nginx (Debian's nginx-light) as the reverse proxy a site puts in front
//! of its registry, here with a cap on request bodies
//! (`client_max_body_size`), on a free loopback port; killed at the end.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{skip, tool};

pub struct Proxy {
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
}

impl Proxy {
    /// Proxies `127.0.0.1:PORT` to `upstream` (`HOST:PORT`), refusing
    /// request bodies larger than `max_body` (nginx's size syntax, such as
    /// `5m`) with 413. None after reporting a skip when nginx is missing.
    pub fn start(test: &str, upstream: &str, max_body: &str) -> Option<Proxy> {
        let Some(nginx) = tool("nginx") else {
            skip(test, "nginx not installed (apt-get install nginx-light)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("ferry-nginx")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path().display().to_string();
        // Every answer of this proxy carries its own mark: a port probe
        // that reached another test's server is not taken for it.
        let id = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for attempt in 1..=5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            // One process (no master), its files all in the temp dir; the
            // Host header passed on, so the registry's upload URLs name
            // the proxy.
            let config = format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log {d}/access.log;\n\
                   client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                   fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                   server {{\n    listen {addr};\n    client_max_body_size {max_body};\n\
                     add_header X-Ferry-Proxy {id} always;\n\
                     location / {{\n      proxy_pass http://{upstream};\n      proxy_set_header Host $http_host;\n\
                       proxy_http_version 1.1;\n      proxy_request_buffering off;\n    }}\n  }}\n}}\n"
            );
            std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
            let mut child = Command::new(&nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting nginx");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if answers_as(&addr, &id) {
                    return Some(Proxy { dir, addr, child });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if attempt == 5 {
                panic!("nginx did not start on a free port:\n{}", self_log(&d));
            }
        }
        unreachable!()
    }

    /// nginx's access log: one line per request, with method and status.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

/// Does the server at `addr` answer HTTP with this proxy's mark `id`?
fn answers_as(addr: &str, id: &str) -> bool {
    let Ok(out) = Command::new("curl")
        .args([
            "-s",
            "--noproxy",
            "*",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-D",
            "-",
        ])
        .arg(format!("http://{addr}/v2/"))
        .output()
    else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.trim()
            .eq_ignore_ascii_case(&format!("x-ferry-proxy: {id}"))
    })
}

fn self_log(dir: &str) -> String {
    std::fs::read_to_string(format!("{dir}/error.log")).unwrap_or_default()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
