#![cfg(feature = "jwt")]
//! Against a real OpenID provider: `oidc-provider` from npm under Node, started by
//! `support/oidc_provider.rs` on loopback, with real logins (authorization code + PKCE) and real
//! `refresh_token` grants. Without node or the installed package, each test prints a `SKIP:`
//! line and passes, unless `CI` is set.

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use jsonwebtoken::{DecodingKey, Validation, decode, jwk::JwkSet};
use oidc_provider::{OidcProvider, jwt_claims, jwt_header};
use serde_json::Value;

/// The MCP resource the access tokens are for (RFC 8707): their `aud`.
const RESOURCE: &str = "https://mcp.test/mcp";

/// Verifies `jwt` with the provider's published keys, as a resource server would.
async fn verify(provider: &OidcProvider, jwt: &str) -> Value {
    let jwks: JwkSet = serde_json::from_value(provider.jwks().await).expect("a JWKS");
    let kid = jwt_header(jwt)["kid"].as_str().expect("kid").to_owned();
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not published"));
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[RESOURCE]);
    validation.set_issuer(&[provider.issuer()]);
    decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap_or_else(|e| panic!("the token does not verify: {e}"))
        .claims
}

/// The harness alone: real logins and refresh grants give RS256 JWT access tokens for the
/// resource, verifiable with the published keys; refresh tokens rotate; a restart with a new
/// key keeps the issuer URL and publishes only the new key.
#[tokio::test]
async fn the_provider_issues_real_tokens_for_the_resource() {
    let Some(mut provider) = OidcProvider::start(RESOURCE) else {
        return;
    };
    assert!(
        provider.issuer().starts_with("http://127.0.0.1:"),
        "{}",
        provider.issuer()
    );

    let alice = provider.login("alice").await;
    let header = jwt_header(&alice.access_token);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(
        header["kid"],
        provider.signing_key().kid.as_str(),
        "{header}"
    );
    let claims = verify(&provider, &alice.access_token).await;
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["scope"], "mcp");
    assert!(alice.id_token.is_some(), "an ID token too");

    // Refresh grants: new bytes, same iss/sub/aud; the refresh token rotates.
    let mut current = alice.clone();
    for _ in 0..3 {
        let next = provider.refresh(current.refresh_token()).await;
        assert_ne!(next.access_token, current.access_token);
        assert_ne!(next.refresh_token(), current.refresh_token());
        let claims = verify(&provider, &next.access_token).await;
        assert_eq!(
            (&claims["iss"], &claims["sub"], &claims["aud"]),
            (
                &Value::from(provider.issuer()),
                &Value::from("alice"),
                &Value::from(RESOURCE)
            )
        );
        current = next;
    }
    // A used refresh token is refused, and its reuse revokes the grant (the newest token too).
    let reuse = provider.try_refresh(alice.refresh_token()).await;
    assert!(reuse.is_err(), "a rotated refresh token was accepted again");
    let after = provider.try_refresh(current.refresh_token()).await;
    assert!(
        after.is_err(),
        "refresh token reuse did not revoke the grant"
    );

    let bob = provider.login("bob").await;
    assert_eq!(jwt_claims(&bob.access_token)["sub"], "bob");
    assert!(
        provider.try_login("mallory").await.is_err(),
        "an unknown account logs in"
    );

    // Restart with a new key, on the same issuer URL: only the new key is published and signs.
    let (issuer, old_kid) = (
        provider.issuer().to_owned(),
        provider.signing_key().kid.clone(),
    );
    let new = provider.rotate_key();
    assert_ne!(new.kid, old_kid);
    assert_eq!(provider.issuer(), issuer);
    let kids: Vec<Value> = provider.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, [Value::from(new.kid.as_str())]);
    let again = provider.login("alice").await;
    assert_eq!(jwt_header(&again.access_token)["kid"], new.kid.as_str());
    assert_eq!(verify(&provider, &again.access_token).await["iss"], issuer);
}
