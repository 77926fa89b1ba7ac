//! ferry as a Docker CLI plugin. Linked as `docker-ferry` into
//! `~/.docker/cli-plugins/` (or `$DOCKER_CONFIG/cli-plugins/`), it answers
//! the docker CLI's metadata request, and turns what `docker [FLAGS] ferry
//! ARGS` runs (`docker-ferry [FLAGS] ferry ARGS`) into `ferry ARGS`, keeping
//! what docker's own flags say about the daemon and its configuration.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::output::say;
use crate::{Error, Result};

/// The subcommand the docker CLI runs to learn about a plugin.
pub const METADATA: &str = "docker-cli-plugin-metadata";

/// What the docker CLI shows for the plugin (`docker --help`, `docker info`).
const DESCRIPTION: &str = "Move Docker images across an air gap with the fewest bytes";

/// Prints the plugin metadata the docker CLI asks for with [`METADATA`].
pub fn print_metadata() -> Result<()> {
    let v = serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "ferry",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": DESCRIPTION,
    });
    say!("{v}")
}

/// The program name help and errors show when ferry runs as the plugin.
const PLUGIN_BIN: &str = "docker ferry";

/// The command line ferry should parse. Unchanged unless this process runs
/// as a docker plugin (its file name is `docker-NAME`) and was started the
/// way the docker CLI starts one: then docker's global flags and the
/// plugin's own name are taken off. `-H`/`--host` becomes `--docker-host`;
/// `--config` and `--context` become `$DOCKER_CONFIG` and `$DOCKER_CONTEXT`,
/// for which the process re-executes itself (this returns only on failure).
pub fn args(argv: Vec<OsString>) -> Result<Vec<OsString>> {
    if argv.first().is_some_and(|a| a == PLUGIN_BIN) {
        // Re-executed by the plugin below, docker's flags already applied.
        watch_docker_cli();
        return Ok(argv);
    }
    let Some(name) = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(OsStr::to_str)
        .and_then(|f| f.strip_prefix("docker-"))
        .map(str::to_string)
    else {
        return Ok(argv);
    };
    if argv.get(1).is_some_and(|a| a == METADATA) {
        return Ok(vec![PLUGIN_BIN.into(), METADATA.into()]);
    }
    let (globals, used) = docker_globals(&argv[1..]);
    let is = |i: usize, s: &str| argv.get(1 + used + i).is_some_and(|a| a == s);
    let rest: Vec<OsString> = if is(0, &name) {
        argv[2 + used..].to_vec()
    } else if is(0, "help") && is(1, &name) {
        // `docker help ferry [CMD]`
        let mut r = vec![OsString::from("help")];
        r.extend(argv[3 + used..].iter().cloned());
        r
    } else {
        // Run by hand as `docker-ferry ARGS`: plain ferry arguments.
        return Ok(argv);
    };
    let mut out: Vec<OsString> = vec![PLUGIN_BIN.into()];
    if let Some(host) = &globals.host {
        out.push("--docker-host".into());
        out.push(host.clone());
    }
    out.extend(rest);
    if globals.config.is_none() && globals.context.is_none() {
        watch_docker_cli();
        return Ok(out);
    }
    Err(reexec(out, &globals))
}

/// The variable naming the socket the docker CLI keeps open to a plugin
/// while it runs, and closes when it is told to stop (a signal).
const CLI_SOCKET: &str = "DOCKER_CLI_PLUGIN_SOCKET";

/// Connects to the docker CLI's socket, if it gave one, and ends this
/// process (exit status 130, as for an interrupt) when the CLI closes it:
/// the docker CLI passes a signal on to its plugin that way only, and a
/// store is left by an interrupted ferry as it is after Ctrl-C.
fn watch_docker_cli() {
    #[cfg(unix)]
    {
        use std::io::{Read, Write};
        let Some(addr) = std::env::var_os(CLI_SOCKET) else {
            return;
        };
        let Ok(mut conn) = connect(&addr) else {
            return;
        };
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            loop {
                match conn.read(&mut b) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = writeln!(
                std::io::stderr(),
                "ferry: stopped: the docker CLI running it was interrupted"
            );
            std::process::exit(130);
        });
    }
}

/// Connects to the docker CLI's socket: `@NAME` is a Linux abstract
/// socket, anything else a path.
#[cfg(unix)]
fn connect(addr: &OsStr) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixStream;
    #[cfg(target_os = "linux")]
    if let Some(name) = addr.as_bytes().strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        return UnixStream::connect_addr(&sa);
    }
    UnixStream::connect(Path::new(addr))
}

/// What docker's global flags before the plugin name say.
#[derive(Debug, Default, PartialEq)]
struct Globals {
    /// `-H`/`--host`: the daemon.
    host: Option<OsString>,
    /// `--config`: the docker CLI's configuration directory.
    config: Option<OsString>,
    /// `-c`/`--context`: the docker context.
    context: Option<OsString>,
}

/// Docker's global flags that take a value, long and short forms; the
/// others (`-D`/`--debug`, `--tls`, `--tlsverify`) take none.
const VALUE_FLAGS: [(&str, Option<char>); 7] = [
    ("config", None),
    ("context", Some('c')),
    ("host", Some('H')),
    ("log-level", Some('l')),
    ("tlscacert", None),
    ("tlscert", None),
    ("tlskey", None),
];

/// Reads docker's global flags at the start of `args` (`--flag V`,
/// `--flag=V`, `-f V`, `-fV`, `-f=V`); returns them and how many arguments
/// they took. Stops at the first argument that is not one of them.
fn docker_globals(args: &[OsString]) -> (Globals, usize) {
    let mut g = Globals::default();
    let mut i = 0;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        let (flag, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v)),
                None => (long.to_string(), None),
            }
        } else if let Some(short) = arg.strip_prefix('-')
            && let Some(c) = short.chars().next()
        {
            let long = match VALUE_FLAGS.iter().find(|(_, s)| *s == Some(c)) {
                Some((l, _)) => l.to_string(),
                None if short == "D" => "debug".to_string(),
                None => break,
            };
            let rest = &short[c.len_utf8()..];
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            (long, (!rest.is_empty()).then_some(rest))
        } else {
            break;
        };
        if matches!(flag.as_str(), "debug" | "tls" | "tlsverify") {
            i += 1;
            continue;
        }
        if !VALUE_FLAGS.iter().any(|(l, _)| *l == flag) {
            break;
        }
        let value = match inline {
            Some(v) => {
                i += 1;
                OsString::from(v)
            }
            None => match args.get(i + 1) {
                Some(v) => {
                    i += 2;
                    v.clone()
                }
                None => break,
            },
        };
        match flag.as_str() {
            "host" => g.host = Some(value),
            "config" => g.config = Some(value),
            "context" => g.context = Some(value),
            _ => {}
        }
    }
    (g, i)
}

/// Runs this program again with `args`, and `$DOCKER_CONFIG` and
/// `$DOCKER_CONTEXT` set as docker's flags said (a context given on the
/// command line outranks `$DOCKER_HOST`, as it does for docker). Returns
/// only the error of failing to.
fn reexec(args: Vec<OsString>, g: &Globals) -> Error {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return Error::io("finding the ferry program to run as a docker plugin", e),
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(&args[1..]);
    if let Some(c) = &g.config {
        cmd.env("DOCKER_CONFIG", c);
    }
    if let Some(c) = &g.context {
        cmd.env("DOCKER_CONTEXT", c);
        if g.host.is_none() {
            cmd.env_remove("DOCKER_HOST");
        }
    }
    let running = || format!("running {} as a docker plugin", exe.display());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.arg0(&args[0]).exec();
        Error::io(running(), e)
    }
    #[cfg(not(unix))]
    match cmd.status() {
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(e) => Error::io(running(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn docker_flags_are_read_up_to_the_plugin_name() {
        let (g, n) = docker_globals(&os(&[
            "--config",
            "/c",
            "-D",
            "-Hunix:///s",
            "--log-level=warn",
            "--tlsverify",
            "-c=ctx",
            "ferry",
            "-H",
            "x",
        ]));
        assert_eq!(n, 7);
        assert_eq!(g.host.as_deref(), Some(OsStr::new("unix:///s")));
        assert_eq!(g.config.as_deref(), Some(OsStr::new("/c")));
        assert_eq!(g.context.as_deref(), Some(OsStr::new("ctx")));
    }

    #[test]
    fn plugin_invocation_drops_its_name_and_keeps_the_host() {
        let a = args(os(&[
            "/x/docker-ferry",
            "-H",
            "tcp://h:2375",
            "ferry",
            "ls",
            "--json",
        ]))
        .unwrap();
        assert_eq!(
            a,
            os(&[
                "docker ferry",
                "--docker-host",
                "tcp://h:2375",
                "ls",
                "--json"
            ])
        );
        let by_hand = os(&["/x/docker-ferry", "--store", "s", "ls"]);
        assert_eq!(args(by_hand.clone()).unwrap(), by_hand);
        let plain = os(&["ferry", "ferry", "ls"]);
        assert_eq!(args(plain.clone()).unwrap(), plain);
        assert_eq!(
            args(os(&["docker-ferry", "help", "ferry", "ls"])).unwrap(),
            os(&["docker ferry", "help", "ls"])
        );
        assert_eq!(
            args(os(&["docker-ferry", METADATA])).unwrap(),
            os(&["docker ferry", METADATA])
        );
    }
}
