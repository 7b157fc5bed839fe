//! The official MCP Python SDK's server (`tests/support/python/upstream.py`, pinned by
//! `tests/support/python/requirements.txt`) on a loopback port, killed on drop.
//!
//! Python is `MCP_PYTHON` when set (`.ci/run` installs the SDK in a virtual environment and
//! points it there), else `python3` on `PATH`. [`start`] returns `None` after a loud `SKIP` when
//! it lacks the SDK, and panics instead when `CI` is set.
//!
//! Reached as `support::python_upstream`.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::{example_bin::Spawned, external};

/// The directory of the script and its requirements.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python")
}

/// A Python that imports the MCP SDK, or `None` after a `SKIP` (a panic with `CI` set).
pub fn python() -> Option<PathBuf> {
    let python = std::env::var_os("MCP_PYTHON")
        .map(PathBuf::from)
        .or_else(|| external::on_path("python3"));
    let install = format!(
        "pip install -r {} (or set MCP_PYTHON to a python that has it)",
        dir().join("requirements.txt").display()
    );
    let Some(python) = python else {
        external::missing("python3", &install);
        return None;
    };
    let imports = Command::new(&python)
        .args(["-c", "import mcp.server.mcpserver, uvicorn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !imports {
        external::missing("the MCP Python SDK (mcp==2.3.0)", &install);
        return None;
    }
    Some(python)
}

/// Starts the Python MCP server; its `url` is its MCP endpoint.
pub fn start() -> Option<Spawned> {
    let python = python()?;
    let mut command = Command::new(python);
    command
        .arg(dir().join("upstream.py"))
        .env("PYTHONUNBUFFERED", "1");
    Some(Spawned::start(&mut command))
}
