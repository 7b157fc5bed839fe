//! Real DPoP clients for the end-to-end tests: npm `dpop` under Node
//! (`tests/support/oidc/dpop_client.mjs`) and Python `joserfc`
//! (`tests/support/python/dpop_client.py`), each a child process that makes proofs with key
//! pairs of its own, one JSON line per proof. No proof is made by this crate's code.
//!
//! [`DpopClient::node`] and [`DpopClient::python`] return `None` after a loud `SKIP:` when the
//! runtime or the library is missing, unless `CI` is set: then they panic.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::Mutex,
};

use serde_json::{Value, json};

/// One client process.
pub struct DpopClient {
    name: &'static str,
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

fn support_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

impl DpopClient {
    /// npm `dpop` (installed with `npm ci --prefix tests/support/oidc`).
    pub fn node() -> Option<Self> {
        let dir = support_dir().join("oidc");
        if !dir.join("node_modules/dpop/package.json").is_file() {
            super::external::skip(
                "npm dpop is missing: run `npm ci --prefix tests/support/oidc`",
                &[],
            );
            return None;
        }
        let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
        let mut command = Command::new(node);
        command.current_dir(&dir).arg("dpop_client.mjs");
        Self::spawn("node dpop", command)
    }

    /// Python `joserfc` (`MCP_PYTHON` or `python3`, with `tests/support/python/requirements.txt`).
    pub fn python() -> Option<Self> {
        let python = std::env::var_os("MCP_PYTHON")
            .map(PathBuf::from)
            .or_else(|| super::external::on_path("python3"));
        let has_joserfc = python.as_ref().is_some_and(|python| {
            Command::new(python)
                .args(["-c", "import joserfc"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let (Some(python), true) = (python, has_joserfc) else {
            super::external::skip(
                "Python joserfc is missing: pip install -r tests/support/python/requirements.txt \
                 (or set MCP_PYTHON)",
                &[],
            );
            return None;
        };
        let mut command = Command::new(python);
        command
            .arg(support_dir().join("python/dpop_client.py"))
            .env("PYTHONUNBUFFERED", "1");
        Self::spawn("python joserfc", command)
    }

    fn spawn(name: &'static str, mut command: Command) -> Option<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} client: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Some(Self {
            name,
            child,
            io: Mutex::new((stdin, stdout)),
        })
    }

    /// Which library makes the proofs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A fresh proof with key pair `key` for `htm` `htu`, with `ath` of `token`, made at a
    /// clock `skew` seconds off.
    pub fn proof_at(
        &self,
        key: &str,
        htm: &str,
        htu: &str,
        token: Option<&str>,
        skew: i64,
    ) -> String {
        let request = json!({"key": key, "htm": htm, "htu": htu, "token": token, "skew": skew});
        let mut io = self.io.lock().unwrap();
        writeln!(io.0, "{request}").expect("write to the DPoP client");
        io.0.flush().unwrap();
        let mut line = String::new();
        io.1.read_line(&mut line)
            .expect("read from the DPoP client");
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{} answered {line:?}: {e}", self.name));
        answer["proof"]
            .as_str()
            .unwrap_or_else(|| panic!("{} made no proof: {answer}", self.name))
            .to_owned()
    }

    /// A fresh proof, now.
    pub fn proof(&self, key: &str, htm: &str, htu: &str, token: Option<&str>) -> String {
        self.proof_at(key, htm, htu, token, 0)
    }
}

impl Drop for DpopClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
