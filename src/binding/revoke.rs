//! Operator calls on a [`SessionBindingLayer`]: end one session, or every session and task of
//! one principal, on every replica that shares the store.

use crate::{
    Identity, SessionBindingLayer,
    store::{BindingStore, Owner, Revoked, StoreError},
};

impl<St: BindingStore, I> SessionBindingLayer<St, I> {
    /// Ends the session `session_id` (the `Mcp-Session-Id` value), whoever holds it: its
    /// binding becomes a tombstone for the [`tombstone_ttl`](Self::tombstone_ttl), so every
    /// replica that shares the store answers its next request 404 (and ends an open GET stream
    /// of it at its next recheck). Idempotent; ending an unknown id leaves a tombstone on it.
    ///
    /// The inner server's own session is not deleted by this call (the layer holds no inner
    /// service here): no request reaches it any more, and it goes when the inner server drops
    /// idle sessions.
    ///
    /// # Errors
    ///
    /// The store's error; the session may or may not be ended then: call again.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use mcp_session_binding::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new();
    /// layer.end_session("3f2a9c1e-0b7d-4e8a").await.unwrap();
    /// # });
    /// # }
    /// ```
    pub async fn end_session(&self, session_id: &str) -> Result<(), StoreError> {
        let (store, config) = self.store_and_config();
        let key = store.key_derivation().session(session_id);
        store.end(key, config.tombstone_ttl).await?;
        crate::metrics::session_ended("revoked");
        tracing::info!(
            target: "mcp_session_binding",
            session = %key.short(),
            "session ended by the operator"
        );
        Ok(())
    }

    /// Ends every live session of `identity` and removes every task record of it
    /// ([`BindingStore::end_owner`]), on every replica that shares the store: each session
    /// answers 404 from its next request on, each task as unknown. Other principals are not
    /// touched. What it does not do: refuse `identity`'s tokens, so a client that still holds
    /// a valid token can open a new session; revoke the token (or the user) at the
    /// authorization server first, or with the `revocation` hook of `JwtAuthLayer` (feature
    /// `jwt`).
    ///
    /// The inner server's sessions are not deleted by this call, as with
    /// [`end_session`](Self::end_session).
    ///
    /// # Errors
    ///
    /// The store's error (some sessions may be ended then: call again), or a store that cannot
    /// revoke.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use mcp_session_binding::{Identity, SessionBindingLayer};
    ///
    /// let layer = SessionBindingLayer::new();
    /// let alice = Identity::new("https://issuer.example", "alice").unwrap();
    /// let revoked = layer.end_sessions_of(&alice).await.unwrap();
    /// assert_eq!((revoked.sessions, revoked.tasks), (0, 0));
    /// # });
    /// # }
    /// ```
    pub async fn end_sessions_of(&self, identity: &Identity) -> Result<Revoked, StoreError> {
        let (store, config) = self.store_and_config();
        let owner = Owner::User(identity.clone());
        let revoked = store.end_owner(&owner, config.tombstone_ttl).await?;
        crate::metrics::sessions_ended("revoked", revoked.sessions as u64);
        tracing::info!(
            target: "mcp_session_binding",
            sessions = revoked.sessions,
            tasks = revoked.tasks,
            "sessions and tasks of one principal ended by the operator"
        );
        Ok(revoked)
    }
}
