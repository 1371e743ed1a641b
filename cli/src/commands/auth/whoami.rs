//! `dsync auth whoami`.

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct WhoamiArgs {}

pub async fn run(global: &GlobalArgs, _args: WhoamiArgs) -> anyhow::Result<i32> {
    let me = global.client()?.whoami().await.api()?;
    global.output.print(&me, || {
        let mut t = Table::new(["SUBJECT", "ROLE", "SCOPES", "EXPIRES_AT", "AUTH"]);
        t.row([
            me.subject.clone(),
            me.role.to_string(),
            if me.scopes.is_empty() {
                "*".to_string()
            } else {
                me.scopes.join(",")
            },
            me.expires_at.map_or("-".into(), |e| e.to_string()),
            me.auth_mode.clone(),
        ]);
        t.render()
    })?;
    Ok(EXIT_OK)
}
