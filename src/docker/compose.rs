//! The image lists `ferry save` reads besides its arguments: a compose
//! file's `services.*.image` names, with variables resolved the way
//! `docker compose config --images` resolves them (the environment over a
//! `.env` file beside the first compose file), and plain lists of
//! references, one a line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::error::{Error, Result};

/// What a set of compose files asks for.
#[derive(Debug)]
pub struct Stack {
    /// The project name: `COMPOSE_PROJECT_NAME`, else the top-level
    /// `name:`, else the first file's directory name (lowercased, as
    /// compose does).
    pub project: String,
    /// Every service's image, in file order, each once.
    pub images: Vec<String>,
    /// Variables used but set nowhere (they resolve to empty strings).
    pub unset: Vec<String>,
}

/// One service as the merged files describe it.
struct Service {
    name: String,
    image: Option<String>,
    file: PathBuf,
}

/// Reads compose `files` (later ones override a service's `image:`, as
/// `docker compose -f A -f B` does) and lists the images they name.
/// A service with no `image:` is refused: ferry saves what the daemon has.
pub fn read(files: &[PathBuf]) -> Result<Stack> {
    let first = files
        .first()
        .ok_or_else(|| Error::Invalid("name a compose file".into()))?;
    let dir = project_dir(first)?;
    let mut vars = Vars::new(&dir)?;
    let mut services: Vec<Service> = Vec::new();
    let mut named: Option<String> = None;
    for file in files {
        let doc = parse(file)?;
        if let Some(n) = doc.get("name") {
            let n = scalar(n).ok_or_else(|| bad(file, "the top-level name: is not a string"))?;
            named = Some(
                vars.interpolate(&n)
                    .map_err(|m| bad(file, &format!("name: {m}")))?,
            );
        }
        let Some(svcs) = doc.get("services").filter(|s| !s.is_null()) else {
            continue;
        };
        let svcs = svcs
            .as_mapping()
            .ok_or_else(|| bad(file, "services: is not a mapping"))?;
        for (k, v) in svcs {
            let name = scalar(k).ok_or_else(|| bad(file, "a service name is not a string"))?;
            let image = match v.get("image").filter(|i| !i.is_null()) {
                None => None,
                Some(i) => {
                    let raw = scalar(i).ok_or_else(|| {
                        bad(file, &format!("services.{name}.image is not a string"))
                    })?;
                    let image = vars
                        .interpolate(&raw)
                        .map_err(|m| bad(file, &format!("services.{name}.image: {m}")))?;
                    if image.trim().is_empty() {
                        return Err(bad(
                            file,
                            &format!(
                                "services.{name}.image '{raw}' resolves to nothing: set the variables it uses"
                            ),
                        ));
                    }
                    Some(image.trim().to_string())
                }
            };
            match services.iter_mut().find(|s| s.name == name) {
                Some(s) if image.is_some() => {
                    s.image = image;
                    s.file = file.clone();
                }
                Some(_) => {}
                None => services.push(Service {
                    name,
                    image,
                    file: file.clone(),
                }),
            }
        }
    }
    let mut images = Vec::new();
    for s in &services {
        let Some(image) = &s.image else {
            return Err(bad(
                &s.file,
                &format!(
                    "service '{}' has no image: name, and ferry saves images from the daemon: build it and give it an image: name",
                    s.name
                ),
            ));
        };
        if !images.contains(image) {
            images.push(image.clone());
        }
    }
    if images.is_empty() {
        return Err(bad(
            first,
            "names no services with an image: nothing to save",
        ));
    }
    let project = match vars.get("COMPOSE_PROJECT_NAME").filter(|p| !p.is_empty()) {
        Some(p) => p.to_string(),
        None => match named.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => dir_project(&dir)?,
        },
    };
    Ok(Stack {
        project,
        images,
        unset: vars.unset.into_iter().collect(),
    })
}

/// References listed in `path` (`-` for standard input): one a line,
/// blank lines and `#` comments ignored.
pub fn image_list(path: &Path) -> Result<Vec<String>> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| read_err(path, e))?;
    let refs: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if refs.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: lists no images (one reference a line, '#' starts a comment)",
            path.display()
        )));
    }
    Ok(refs)
}

fn read_err(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound(path.to_path_buf())
    } else {
        Error::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }
    }
}

fn bad(file: &Path, msg: &str) -> Error {
    Error::Invalid(format!("{}: {msg}", file.display()))
}

/// A YAML scalar as compose reads it (numbers and booleans as text).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One compose file as a YAML mapping, anchors and `<<` merges applied.
fn parse(file: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(file).map_err(|e| read_err(file, e))?;
    let mut doc: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| bad(file, &format!("not a compose file: {e}")))?;
    doc.apply_merge()
        .map_err(|e| bad(file, &format!("not a compose file: {e}")))?;
    if !doc.is_mapping() {
        return Err(bad(
            file,
            "not a compose file: the top level is not a mapping",
        ));
    }
    Ok(doc)
}

/// The directory holding `file` (the project directory).
fn project_dir(file: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(file).map_err(|e| read_err(file, e))?;
    Ok(abs.parent().map(Path::to_path_buf).unwrap_or(abs))
}

/// The project name compose derives from a directory name: lowercased,
/// only `a-z 0-9 _ -`, starting with a letter or digit.
fn dir_project(dir: &Path) -> Result<String> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let name = name.trim_start_matches(['_', '-']).to_string();
    if name.is_empty() {
        return Err(Error::Invalid(format!(
            "cannot make a project name from the directory {}: pass --name",
            dir.display()
        )));
    }
    Ok(name)
}

/// Variables for interpolation: the environment, over `.env`.
struct Vars {
    map: BTreeMap<String, String>,
    unset: BTreeSet<String>,
}

impl Vars {
    fn new(dir: &Path) -> Result<Vars> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let mut vars = Vars {
            map: env.clone(),
            unset: BTreeSet::new(),
        };
        let path = dir.join(".env");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vars),
            Err(e) => return Err(read_err(&path, e)),
        };
        for (n, line) in text.lines().enumerate() {
            let at = |m: &str| Error::Invalid(format!("{}:{}: {m}", path.display(), n + 1));
            let Some((key, value)) = vars.env_line(line).map_err(|m| at(&m))? else {
                continue;
            };
            if !env.contains_key(&key) {
                vars.map.insert(key, value);
            }
        }
        vars.unset.clear();
        Ok(vars)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// One `.env` line as KEY and value: `export` optional, values in
    /// single quotes taken as written, in double quotes with `\n`-style
    /// escapes and variables, bare ones with variables and ` #` comments.
    fn env_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Ok(None);
        };
        let key = key.trim().to_string();
        let value = value.trim_start();
        let value = if let Some(v) = value.strip_prefix('\'') {
            let end = v.find('\'').ok_or("unterminated ' quote")?;
            v[..end].to_string()
        } else if let Some(v) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = v.chars();
            loop {
                match chars.next().ok_or("unterminated \" quote")? {
                    '"' => break,
                    '\\' => match chars.next().ok_or("unterminated \" quote")? {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        c => out.push(c),
                    },
                    c => out.push(c),
                }
            }
            self.interpolate(&out)?
        } else {
            let bare = match value.find(" #").or_else(|| value.find("\t#")) {
                Some(i) => &value[..i],
                None => value,
            };
            self.interpolate(bare.trim_end())?
        };
        Ok(Some((key, value)))
    }

    /// Resolves `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
    /// `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}` and `${VAR+alt}`
    /// (defaults may hold variables). Returns the message of a failed
    /// `?` or of a malformed template.
    fn interpolate(&mut self, s: &str) -> Result<String, String> {
        let invalid = || {
            format!(
                "invalid interpolation format in '{s}': you may need to escape any $ with another $"
            )
        };
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = closing(body).ok_or_else(invalid)?;
                out.push_str(&self.braced(&body[..end]).ok_or_else(invalid)??);
                rest = &body[end + 1..];
            } else {
                let n = name_len(after);
                if n == 0 {
                    return Err(invalid());
                }
                out.push_str(&self.value(&after[..n]).unwrap_or_default());
                rest = &after[n..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The value of a set variable; an unset one is remembered.
    fn value(&mut self, name: &str) -> Option<String> {
        let v = self.map.get(name).cloned();
        if v.is_none() {
            self.unset.insert(name.to_string());
        }
        v
    }

    /// The inside of `${...}`: None when malformed.
    fn braced(&mut self, inner: &str) -> Option<Result<String, String>> {
        let n = name_len(inner);
        if n == 0 {
            return None;
        }
        let (name, op) = inner.split_at(n);
        if op.is_empty() {
            return Some(Ok(self.value(name).unwrap_or_default()));
        }
        let set = self.map.get(name).cloned();
        let (colon, op) = match op.strip_prefix(':') {
            Some(o) => (true, o),
            None => (false, op),
        };
        let mut chars = op.chars();
        let kind = chars.next()?;
        let word = chars.as_str();
        // With a colon an empty value counts as unset.
        let present = set.clone().filter(|v| !colon || !v.is_empty());
        Some(match (kind, present) {
            ('-', Some(v)) => Ok(v),
            ('-', None) => self.interpolate(word),
            ('?', Some(v)) => Ok(v),
            ('?', None) => {
                let msg = self.interpolate(word).unwrap_or_else(|_| word.to_string());
                Err(if msg.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {msg}")
                })
            }
            ('+', Some(_)) => self.interpolate(word),
            ('+', None) => Ok(String::new()),
            _ => return None,
        })
    }
}

/// Length of the variable name `s` starts with (`[A-Za-z_][A-Za-z0-9_]*`).
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first()
        .is_none_or(|c| !(c.is_ascii_alphabetic() || *c == b'_'))
    {
        return 0;
    }
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// Index of the `}` closing a `${`, nested `${...}` skipped.
fn closing(body: &str) -> Option<usize> {
    let b = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars {
            map: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unset: BTreeSet::new(),
        }
    }

    #[test]
    fn interpolates_as_compose_does() {
        let mut v = vars(&[("A", "a"), ("E", ""), ("T", "2")]);
        for (tpl, want) in [
            ("x:${A}", "x:a"),
            ("x:$A.y", "x:a.y"),
            ("$$A", "$A"),
            ("${E:-d}", "d"),
            ("${E-d}", ""),
            ("${U-d}", "d"),
            ("${U:-${T}}", "2"),
            ("${U:-${V:-x}}y", "xy"),
            ("${A:+alt}", "alt"),
            ("${E:+alt}", ""),
            ("${E+alt}", "alt"),
            ("${U+alt}", ""),
            ("${E?no}", ""),
            ("${A:?no}", "a"),
            ("no vars", "no vars"),
        ] {
            assert_eq!(v.interpolate(tpl).unwrap(), want, "{tpl}");
        }
        assert!(v.unset.is_empty(), "{:?}", v.unset);
        assert_eq!(v.interpolate("${U}$U:1").unwrap(), ":1");
        assert_eq!(v.unset.iter().collect::<Vec<_>>(), ["U"]);
        let err = v.interpolate("${E:?set E to ${T}}").unwrap_err();
        assert_eq!(err, "required variable E is missing a value: set E to 2");
        assert_eq!(
            v.interpolate("${U?}").unwrap_err(),
            "required variable U is missing a value"
        );
        for bad in ["${A", "${}", "${A:x}", "$ x", "x$", "${-a}"] {
            assert!(
                v.interpolate(bad)
                    .unwrap_err()
                    .contains("invalid interpolation"),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_env_lines() {
        let mut v = vars(&[("A", "a")]);
        for (line, want) in [
            ("K=v", Some(("K", "v"))),
            ("export K = v # note", Some(("K", "v"))),
            ("K='$A #x'", Some(("K", "$A #x"))),
            ("K=\"${A}\\n\"", Some(("K", "a\n"))),
            ("K=x#y", Some(("K", "x#y"))),
            ("K=", Some(("K", ""))),
            ("# K=v", None),
            ("", None),
            ("K", None),
        ] {
            let got = v.env_line(line).unwrap();
            assert_eq!(
                got.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
                want,
                "{line}"
            );
        }
        assert!(v.env_line("K=\"open").is_err());
    }

    #[test]
    fn project_names_from_directories() {
        assert_eq!(
            dir_project(Path::new("/x/My_Stack.v2")).unwrap(),
            "my_stackv2"
        );
        assert_eq!(dir_project(Path::new("/x/-_app")).unwrap(), "app");
        assert!(dir_project(Path::new("/x/...")).is_err());
    }
}
