//! `dsync version`: what this binary is, for upgrade preflights.

use serde::Serialize;

use crate::context::GlobalArgs;

#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct VersionInfo {
    /// The version a node started from this binary reports.
    pub version: String,
    /// The peer wire protocol it speaks; nodes only talk to equal protocols.
    pub protocol: u32,
}

pub fn run(global: &GlobalArgs) -> anyhow::Result<i32> {
    let info = VersionInfo {
        version: dsync_server::version().to_string(),
        protocol: dsync_api::PROTOCOL_VERSION,
    };
    global.output.print(&info, || {
        format!("dsync {} (protocol {})\n", info.version, info.protocol)
    })?;
    Ok(crate::commands::EXIT_OK)
}
