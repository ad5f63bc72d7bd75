//! AWS clients kept by key (the role they run as, and for SNS the topic's region): each
//! is made at its first use, since loading a configuration resolves credentials and may
//! assume a role through STS, and most leaders never make one. The map is bounded by the
//! state: one entry per group role (and region) that a deployment, trigger or alarm names.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;

/// Clients of type `C` by key `K`; clones share the map.
pub struct ClientCache<K, C> {
    clients: Arc<Mutex<BTreeMap<K, C>>>,
}

impl<K, C> Default for ClientCache<K, C> {
    fn default() -> Self {
        Self { clients: Arc::default() }
    }
}

impl<K, C> Clone for ClientCache<K, C> {
    fn clone(&self) -> Self {
        Self { clients: self.clients.clone() }
    }
}

impl<K: Ord + Clone, C: Clone> ClientCache<K, C> {
    /// The client of `key`, made by `make` when there is none yet. A failed `make` keeps
    /// nothing, so the next call tries again. Calls for other keys wait while one is made:
    /// making is rare (once per key) and the map stays simple.
    pub async fn get_or_try_make<E, F, Fut>(&self, key: K, make: F) -> Result<C, E>
    where
        F: FnOnce(K) -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        let mut clients = self.clients.lock().await;
        if let Some(found) = clients.get(&key) {
            return Ok(found.clone());
        }
        let made = make(key.clone()).await?;
        clients.insert(key, made.clone());
        Ok(made)
    }

    /// [`Self::get_or_try_make`] for a `make` that cannot fail.
    pub async fn get_or_make<F, Fut>(&self, key: K, make: F) -> C
    where
        F: FnOnce(K) -> Fut,
        Fut: Future<Output = C>,
    {
        let made = self.get_or_try_make(key, |key| async move { Ok::<C, std::convert::Infallible>(make(key).await) });
        match made.await {
            Ok(client) => client,
            Err(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_is_made_once_per_key_and_a_failed_make_keeps_nothing() {
        let cache: ClientCache<Option<String>, u32> = ClientCache::default();
        let made = std::sync::atomic::AtomicU32::new(0);
        let make = |_key| async {
            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            7
        };
        assert_eq!(cache.get_or_make(None, make).await, 7);
        assert_eq!(cache.clone().get_or_make(None, make).await, 7);
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);

        let role = Some("arn:aws:iam::000000000000:role/r".to_string());
        let failed = cache.get_or_try_make(role.clone(), |_key| async { Err::<u32, &str>("sts refused") }).await;
        assert_eq!(failed, Err("sts refused"));
        assert_eq!(cache.get_or_try_make(role, |_key| async { Ok::<u32, &str>(9) }).await, Ok(9));
    }
}
