//! `dsync auth token create`: sign a token offline with the HS256 secret
//! file, or ask a node to sign it (admin token needed).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use dsync_api::auth::{Role, Scope, TokenRequest, TokenResponse};
use serde::Serialize;

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::parse_duration;
use crate::secrets::Secrets;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for SUBJECT with a role and optional scopes; prints it.
    ///
    /// Signed locally when --secret-file is given or --dir holds a local
    /// secured cluster (<DIR>/secrets/jwt.secret); otherwise a node signs it,
    /// which needs an admin --token. Scopes limit the names the token may
    /// touch: locks:billing/* (prefix), queues:jobs.*, kv:app/config (exact),
    /// cache:*. Without scopes the token covers every name.
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Principal the token names (no `:`); lock owners and queue receipts are bound to it.
    #[arg(long, default_value = "client")]
    pub subject: String,

    /// read, write or admin (each includes the previous).
    #[arg(long, default_value = "read")]
    pub role: Role,

    /// Name-prefix scope KIND:PATTERN (repeatable).
    #[arg(long = "scope", value_name = "KIND:PATTERN")]
    pub scopes: Vec<Scope>,

    /// Lifetime, e.g. 30m, 12h, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: Duration,

    /// HS256 secret file to sign with, instead of asking a node.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Created {
    subject: String,
    role: Role,
    scopes: Vec<String>,
    expires_at: u64,
    token: String,
}

pub async fn run(global: &GlobalArgs, cmd: TokenCommand) -> anyhow::Result<i32> {
    let TokenCommand::Create(args) = cmd;
    let req = TokenRequest {
        subject: args.subject.clone(),
        role: args.role,
        scopes: args.scopes.iter().map(ToString::to_string).collect(),
        ttl_secs: args.ttl.as_secs().max(1),
    };
    let local = args
        .secret_file
        .clone()
        .or_else(|| Some(Secrets::at(&global.dir().ok()?).jwt_secret).filter(|p| p.exists()));
    let resp = match local {
        Some(path) => {
            let secret = dsync_server::auth::read_secret(&path, "JWT secret file")
                .map_err(anyhow::Error::msg)?;
            let (token, expires_at) = dsync_server::auth::mint_hs256(secret.as_bytes(), &req)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))
                .with_context(|| format!("signing with {}", path.display()))?;
            TokenResponse { token, expires_at }
        }
        None => global.client()?.create_token(&req).await.api()?,
    };
    let out = Created {
        subject: req.subject,
        role: req.role,
        scopes: req.scopes,
        expires_at: resp.expires_at,
        token: resp.token,
    };
    global.output.print(&out, || format!("{}\n", out.token))?;
    Ok(EXIT_OK)
}
