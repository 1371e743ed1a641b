//! `/v1/auth`: who am I, and token signing for admins.

use std::sync::Arc;

use axum::extract::State;
use dsync_api::auth::Role;
use dsync_api::auth::{TokenRequest, TokenResponse, WhoAmI};
use dsync_api::routes;
use utoipa_axum::routes;

use super::error::HttpResult;
use super::extract::Json;
use super::route::Api;
use crate::auth::policy::{On, Rule};
use crate::auth::AuthMode;
use crate::auth::Caller;
use crate::node::Node;

pub fn api() -> Api {
    Api::client()
        .tagged("auth")
        .route(Rule::Authenticated, routes!(whoami))
        .route(
            Rule::Role(Role::Admin, On::Everything),
            routes!(create_token),
        )
}

#[utoipa::path(get, path = routes::AUTH_WHOAMI,
    responses(
        (status = 200, description = "The caller as this node sees it", body = dsync_api::auth::WhoAmI),
    ),
)]
async fn whoami(State(node): State<Arc<Node>>, caller: Caller) -> Json<WhoAmI> {
    let p = caller.principal;
    Json(WhoAmI {
        auth_mode: match node.security.auth.mode {
            AuthMode::None => "none".into(),
            AuthMode::Token => "token".into(),
        },
        subject: p.name,
        role: p.role,
        scopes: p.scopes.iter().map(ToString::to_string).collect(),
        expires_at: p.expires_at,
    })
}

/// The guard lets only admins here (every `/v1/auth/*` route but whoami).
#[utoipa::path(post, path = routes::AUTH_TOKENS,
    responses(
        (status = 200, description = "A token signed with the node's HS256 secret", body = dsync_api::auth::TokenResponse),
    ),
)]
async fn create_token(
    State(node): State<Arc<Node>>,
    Json(req): Json<TokenRequest>,
) -> HttpResult<Json<TokenResponse>> {
    let (token, expires_at) = node.security.auth.mint(&req)?;
    Ok(Json(TokenResponse { token, expires_at }))
}
